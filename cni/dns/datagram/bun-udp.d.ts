/**
 * The part of Bun's global API that datagram/bun.ts uses, for the type checker
 * (the shipped responder runs on Bun; see scripts/build-dns.mjs). At run time
 * under Node the global is absent and datagram/index.ts never touches it.
 */
declare namespace Bun {
  interface UdpSocket {
    readonly port: number;
    /** Flat list of (data, port, address) triples; returns how many datagrams were sent. */
    sendMany(packets: readonly (Buffer | number | string)[]): number;
    close(): void;
  }
  function udpSocket(options: {
    hostname: string;
    port: number;
    flags?: number;
    socket: {
      data(socket: UdpSocket, data: Buffer, port: number, address: string): void;
      error?(socket: UdpSocket, error: Error): void;
    };
  }): Promise<UdpSocket>;
}
