/**
 * The one reader of "host:port" text for every flag and field that takes an
 * address: the syntax lives here, each caller states its own rules (an IP or
 * any host, a default port, whether port 0 is fine) and its own error message.
 */
import { isIP } from "node:net";

export interface HostPort {
  /** Without brackets; "" for ":port". */
  host: string;
  /** Absent when the text names no port. */
  port?: number;
}

/**
 * "host:port", ":port", "[v6]:port", "host", or a bare IPv6 address (which
 * can carry no port); undefined when the text is none of these. A bracketed
 * address must name a port: "[fd00::1]" alone is most likely a typo.
 */
export function splitHostPort(text: string): HostPort | undefined {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  if (bracketed) return withPort(bracketed[1]!, bracketed[2]!);
  if (text.includes("[") || text.includes("]")) return undefined;
  const parts = text.split(":");
  if (parts.length === 1) return { host: text };
  if (parts.length === 2) return /^\d{1,5}$/.test(parts[1]!) ? withPort(parts[0]!, parts[1]!) : undefined;
  return isIP(text) === 6 ? { host: text } : undefined;
}

function withPort(host: string, port: string): HostPort | undefined {
  const n = Number(port);
  return n <= 65535 ? { host, port: n } : undefined;
}
