/**
 * Reads the one JSON header line that opens each direction of a transfer
 * connection, bounded in size and time, and hands back any bytes that arrived
 * after it (the start of the stream).
 */
import type { Duplex } from "node:stream";

export function readHeaderLine(
  socket: Duplex,
  maxBytes: number,
  timeoutMs: number,
): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const finish = (err: Error | undefined, result?: { line: string; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.pause();
      if (err) reject(err);
      else resolve(result!);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0 && newline <= maxBytes) {
        finish(undefined, {
          line: buffered.subarray(0, newline).toString("utf8"),
          rest: buffered.subarray(newline + 1),
        });
      } else if (buffered.length > maxBytes) {
        finish(new Error(`header line longer than ${maxBytes} bytes`));
      }
    };
    const onEnd = () => finish(new Error("connection closed before the header line ended"));
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => finish(new Error(`no header line within ${timeoutMs} ms`)), timeoutMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onError);
  });
}
