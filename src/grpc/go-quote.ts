/**
 * Go's %q for the strings grpc-go quotes in its status messages ("malformed method name: %q",
 * "malformed grpc-timeout: ... %q"), so our texts match byte for byte. Header values are latin1
 * strings (one char per byte): printable ASCII as is, '"' and '\' escaped, other bytes as \xNN
 * (what %q prints for bytes that are not valid UTF-8; valid multi-byte UTF-8 is rare enough in a
 * :path or grpc-timeout that we do not special-case it).
 */
export function goQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\' + s[i];
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x09) out += '\\t';
    else if (c >= 0x20 && c < 0x7f) out += s[i];
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out + '"';
}
