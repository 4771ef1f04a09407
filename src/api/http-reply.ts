/**
 * Writing HTTP/1.1 replies on the client port: the headers etcd 3.4 sends with every answer (its
 * default CORS policy allows any origin) and the JSON reply itself, written in one go.
 */
import type { ServerResponse } from 'node:http';

export const corsHeaders: readonly string[] = [
  'Access-Control-Allow-Headers', 'accept, content-type, authorization',
  'Access-Control-Allow-Methods', 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Origin', '*',
];

/** Writes a JSON body. `body` is ASCII in the common case; byteLength handles the rest. */
export function sendJson(res: ServerResponse, status: number, body: string): void {
  if (res.destroyed) return;
  res.writeHead(status, [
    corsHeaders[0]!, corsHeaders[1]!, corsHeaders[2]!, corsHeaders[3]!, corsHeaders[4]!, corsHeaders[5]!,
    'Content-Type', 'application/json',
    'Content-Length', String(Buffer.byteLength(body)),
  ]);
  res.end(body);
}

/** Go's net/http plain-text error (http.Error): 404 "Not Found\n", 405 "Method Not Allowed\n". */
export function sendPlainError(res: ServerResponse, status: number, text: string): void {
  if (res.destroyed) return;
  const body = text + '\n';
  res.writeHead(status, [
    ...corsHeaders,
    'Content-Type', 'text/plain; charset=utf-8',
    'X-Content-Type-Options', 'nosniff',
    'Content-Length', String(Buffer.byteLength(body)),
  ]);
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.destroyed) return;
  res.writeHead(status, [...corsHeaders, 'Content-Type', contentType, 'Content-Length', String(Buffer.byteLength(body))]);
  res.end(body);
}
