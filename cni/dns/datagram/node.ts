/** The responder's UDP socket on Node's dgram (one receive and one send call per datagram). */
import { createSocket } from "node:dgram";
import type { DatagramBinding, DatagramSocket } from "./index.ts";

export async function bindNodeDatagram(binding: DatagramBinding): Promise<DatagramSocket> {
  const { address, family } = binding;
  const socket = createSocket({
    type: family === 6 ? "udp6" : "udp4",
    // Replies go to the address a query came from, always an IP literal: skip
    // dgram's default lookup, which defers every send by a tick.
    lookup: (
      _host: string,
      _family: unknown,
      callback: (err: null, address: string, family: number) => void,
    ) => callback(null, _host, family),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(binding.port, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  socket.on("error", (err) => binding.onError(err));
  socket.on("message", (message, remote) => binding.onMessage(message, remote.port, remote.address));
  return {
    port: socket.address().port,
    send: (message, port, to) => socket.send(message, port, to),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
