/**
 * `-w table` output as etcdctl renders it with olekukonko/tablewriter (defaults plus
 * SetAlignment(ALIGN_RIGHT)): upper-cased headers centred (an odd leftover space goes right),
 * cells right-aligned, one space of padding each side, `+---+` rules above and below the header
 * and at the end. Worked example, header "ID" over a 16-wide column: "|        ID        |".
 */

function center(text: string, width: number): string {
  const gap = width - text.length;
  const left = Math.floor(gap / 2);
  return ' '.repeat(left) + text + ' '.repeat(gap - left);
}

export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const titles = header.map((h) => h.toUpperCase());
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+\n`;
  let out = rule;
  out += `|${titles.map((t, i) => ` ${center(t, widths[i]!)} `).join('|')}|\n`;
  out += rule;
  for (const row of rows) {
    out += `|${widths.map((w, i) => ` ${(row[i] ?? '').padStart(w)} `).join('|')}|\n`;
  }
  out += rule;
  return out;
}
