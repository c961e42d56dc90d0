/**
 * An rtnetlink socket in a given network namespace, through libc via Bun's FFI
 * (the plugin is compiled by Bun; Node has no netlink sockets). Synchronous:
 * the plugin does one thing at a time and the kernel answers rtnetlink
 * requests before send(2) returns.
 *
 * A socket stays in the namespace it was created in, so a socket for a pod is
 * made by entering the pod's namespace (setns(2), this thread only), creating
 * the socket and going back at once: nothing else runs in between.
 */
import { CString, dlopen, FFIType, read } from "bun:ffi";
import { SkeinError } from "../../kit/errors.ts";
import { linkGet, parseReplies, type Request } from "./rtnl.ts";

export const ENOENT = 2;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
/** ioctl_ns(2): the type of namespace a file descriptor refers to. */
const NS_GET_NSTYPE = 0xb703;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const RECEIVE_TIMEOUT_SECONDS = 10;
const BUFFER_BYTES = 65536;

const { i32, u64, ptr } = FFIType;
let libc: ReturnType<typeof load> | undefined;

function load() {
  return dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    setsockopt: { args: [i32, i32, i32, ptr, i32], returns: i32 },
    send: { args: [i32, ptr, u64, i32], returns: i32 },
    recv: { args: [i32, ptr, u64, i32], returns: i32 },
    open: { args: [ptr, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    setns: { args: [i32, i32], returns: i32 },
    ioctl: { args: [i32, u64], returns: i32 },
    __errno_location: { args: [], returns: ptr },
    strerror: { args: [i32], returns: ptr },
  }).symbols;
}

function c() {
  libc ??= load();
  return libc;
}

/** A system call or a netlink request failed; `errno` says how. */
export class SystemError extends SkeinError {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super("SystemCallFailed", `${what}: ${describeErrno(errno)}`);
    this.errno = errno;
  }
}

function describeErrno(errno: number): string {
  return `${new CString(c().strerror(errno)).toString()} (errno ${errno})`;
}

function lastErrno(): number {
  return read.i32(c().__errno_location(), 0);
}

function check(result: number, what: string): number {
  if (result < 0) throw new SystemError(what, lastErrno());
  return result;
}

const path = (p: string) => new TextEncoder().encode(`${p}\0`);

/** The namespace file at `netnsPath`, opened; refuses files of other kinds of namespace. */
export function openNetns(netnsPath: string): number {
  const fd = check(c().open(path(netnsPath), O_RDONLY | O_CLOEXEC), `open ${netnsPath}`);
  const type = c().ioctl(fd, NS_GET_NSTYPE);
  if (type !== CLONE_NEWNET) {
    const errno = type < 0 ? lastErrno() : EINVAL;
    c().close(fd);
    throw new SystemError(`${netnsPath} is not a network namespace`, errno);
  }
  return fd;
}

export function closeFd(fd: number): void {
  c().close(fd);
}

function openSocket(): number {
  const fd = check(c().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "netlink socket");
  const timeout = new Uint8Array(16); // struct timeval
  new DataView(timeout.buffer).setBigInt64(0, BigInt(RECEIVE_TIMEOUT_SECONDS), true);
  c().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length);
  return fd;
}

export class RtnlSocket {
  private seq = 1;
  private readonly buffer = new Uint8Array(BUFFER_BYTES);

  private constructor(private readonly fd: number) {}

  /** A socket in this process's namespace, or in the one whose file descriptor is `netnsFd`. */
  static open(netnsFd?: number): RtnlSocket {
    if (netnsFd === undefined) return new RtnlSocket(openSocket());
    const home = check(c().open(path("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC), "open own netns");
    try {
      check(c().setns(netnsFd, CLONE_NEWNET), "enter the pod's network namespace");
      try {
        return new RtnlSocket(openSocket());
      } finally {
        // Not going back would leave this thread in the pod: nothing after could be trusted.
        if (c().setns(home, CLONE_NEWNET) < 0) {
          process.stderr.write(
            `cannot return to the plugin's network namespace: ${describeErrno(lastErrno())}\n`,
          );
          process.exit(1);
        }
      }
    } finally {
      c().close(home);
    }
  }

  /** A fresh sequence number for the next request. */
  next(): number {
    return this.seq++;
  }

  /**
   * Sends the requests in one write and waits for each one's acknowledgement;
   * throws for the first that failed, named by `what` (same order).
   */
  request(requests: readonly Request[], what: readonly string[]): void {
    const bytes = new Uint8Array(requests.reduce((n, r) => n + r.bytes.length, 0));
    let offset = 0;
    for (const r of requests) {
      bytes.set(r.bytes, offset);
      offset += r.bytes.length;
    }
    check(c().send(this.fd, bytes, bytes.length, 0), "netlink send");
    const pending = new Map(requests.map((r, i) => [r.seq, what[i] ?? "netlink request"]));
    let failure: SystemError | undefined;
    while (pending.size > 0) {
      for (const reply of this.receive()) {
        const name = pending.get(reply.seq);
        if (name === undefined || reply.kind !== "ack") continue;
        pending.delete(reply.seq);
        if (reply.errno !== 0) failure ??= new SystemError(name, reply.errno);
      }
    }
    if (failure) throw failure;
  }

  /** The link's index, or undefined when there is no link by that name. */
  linkIndex(name: string): number | undefined {
    const request = linkGet(name, this.next());
    check(c().send(this.fd, request.bytes, request.bytes.length, 0), "netlink send");
    for (;;) {
      for (const reply of this.receive()) {
        if (reply.seq !== request.seq) continue;
        if (reply.kind === "link") return reply.index;
        if (reply.kind === "ack") {
          if (reply.errno === ENODEV) return undefined;
          throw new SystemError(`look up link ${name}`, reply.errno);
        }
      }
    }
  }

  close(): void {
    c().close(this.fd);
  }

  private receive() {
    const n = check(c().recv(this.fd, this.buffer, this.buffer.length, 0), "netlink receive");
    return parseReplies(this.buffer.subarray(0, n));
  }
}
