/**
 * A bound UDP socket for the responder, on whichever runtime answers: Node's
 * dgram (node.ts), or Bun's UDP socket (bun.ts), which receives datagrams in
 * batches (recvmmsg) and lets replies leave in batches (sendmmsg). Per
 * datagram, the runtime's receive and send are most of an answer's cost, so
 * the shipped responder runs on Bun (scripts/build-dns.mjs); the same code
 * answers under Node in tests and in `node dist/skein.mjs dns`.
 */
import cluster from "node:cluster";
import { bindBunDatagram } from "./bun.ts";
import { bindNodeDatagram } from "./node.ts";

export interface DatagramSocket {
  /** The port bound (the kernel's pick when 0 was asked for). */
  readonly port: number;
  /** Sends (or queues for the next batch) one datagram; a failed send concerns that one reply only. */
  send(message: Buffer, port: number, address: string): void;
  close(): Promise<void>;
}

export interface DatagramBinding {
  address: string;
  family: 4 | 6;
  port: number;
  onMessage(message: Buffer, port: number, address: string): void;
  /** An error on the bound socket: it concerns one datagram, never the socket. */
  onError(err: unknown): void;
}

export function bindDatagram(binding: DatagramBinding): Promise<DatagramSocket> {
  if (process.versions.bun === undefined) return bindNodeDatagram(binding);
  // Bun's own sockets bypass node:cluster's handle sharing: the workers of one
  // `skein dns --workers N` bind the same port each, with SO_REUSEPORT.
  return bindBunDatagram(binding, { shared: cluster.isWorker });
}
