/**
 * The responder's UDP socket on Bun. Bun reads datagrams in batches and calls
 * back once per datagram; replies made in those callbacks are queued and leave
 * together in one sendmmsg(2) when the batch is done (setImmediate runs after
 * the loop's I/O phase). Under load that is a dozen replies per system call
 * (measured with dnsperf), and answering costs a fraction of a separate send
 * each; a lone query waits no longer than its own callback.
 */
import type { DatagramBinding, DatagramSocket } from "./index.ts";

/**
 * uSockets' LISTEN_REUSE_PORT, Bun's udpSocket `flags` bit for SO_REUSEPORT.
 * The kernel then lets another socket of the same user join the port; on port
 * 53 that user is root, who could take the port anyway.
 */
const REUSE_PORT = 4;

export async function bindBunDatagram(
  binding: DatagramBinding,
  options: { shared: boolean },
): Promise<DatagramSocket> {
  if (options.shared && binding.port === 0) {
    // Each worker binds on its own: port 0 would give each a different port.
    throw new Error("worker processes need a fixed port to share; port 0 gives each its own");
  }
  // Replies waiting for the batch's end; a flush is queued exactly while there are any.
  let pending: (Buffer | number | string)[] = [];
  const socket = await Bun.udpSocket({
    hostname: binding.address,
    port: binding.port,
    flags: options.shared ? REUSE_PORT : 0,
    socket: {
      data: (_socket, message, port, address) => binding.onMessage(message, port, address),
      error: (_socket, err) => binding.onError(err),
    },
  });
  const flush = () => {
    // Nothing left when close() flushed first.
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    try {
      // Replies the kernel would not take (a full socket buffer) are dropped, as UDP may.
      socket.sendMany(batch);
    } catch (err) {
      binding.onError(err);
    }
  };
  return {
    port: socket.port,
    send(message, port, address) {
      if (pending.length === 0) setImmediate(flush);
      pending.push(message, port, address);
    },
    async close() {
      flush();
      socket.close();
    },
  };
}
