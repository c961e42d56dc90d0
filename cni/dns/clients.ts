/**
 * Who may ask: the responder is not an open resolver. By default it answers
 * clients on the overlay (the Network's CIDR) and on the node itself (its own
 * interface addresses and loopback), and drops everything else without a
 * word, so it can neither be used to reflect traffic nor to probe the
 * cluster's names from outside.
 *
 * The node's addresses change under it (the agent adds the gateway address
 * after start), so the list is rebuilt every few seconds and whenever the
 * allowed CIDRs change; decisions per source address are remembered until
 * then, in a bounded map.
 */
import { BlockList, isIP } from "node:net";
import { networkInterfaces } from "node:os";

export interface ClientPolicyOptions {
  /** Networks whose clients are answered ("10.244.0.0/16"); read at each rebuild. */
  cidrs: () => readonly string[];
  /** The node's own addresses; default: every interface address of this network namespace. */
  localAddresses?: () => readonly string[];
  /** Answer anyone (for a responder deliberately exposed). */
  allowAll?: boolean;
  refreshMs?: number;
  now?: () => number;
}

const MAX_REMEMBERED = 16_384;

export class ClientPolicy {
  private list = new BlockList();
  private remembered = new Map<string, boolean>();
  private builtAt = Number.NEGATIVE_INFINITY;
  private builtFrom = "";
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly options: ClientPolicyOptions) {
    this.refreshMs = options.refreshMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  allows(address: string): boolean {
    if (this.options.allowAll) return true;
    const now = this.now();
    if (now - this.builtAt >= this.refreshMs) this.rebuild(now);
    const known = this.remembered.get(address);
    if (known !== undefined) return known;
    const plain = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(plain);
    const allowed = family !== 0 && this.list.check(plain, family === 4 ? "ipv4" : "ipv6");
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.clear();
    this.remembered.set(address, allowed);
    return allowed;
  }

  private rebuild(now: number): void {
    this.builtAt = now;
    const cidrs = [...this.options.cidrs()];
    const locals = [...(this.options.localAddresses ?? interfaceAddresses)()];
    const from = JSON.stringify([cidrs, locals]);
    if (from === this.builtFrom) return;
    const list = new BlockList();
    list.addSubnet("127.0.0.0", 8, "ipv4");
    list.addAddress("::1", "ipv6");
    for (const cidr of cidrs) {
      const [network = "", prefix = ""] = cidr.split("/");
      const family = isIP(network);
      if (family !== 0 && /^\d{1,3}$/.test(prefix))
        list.addSubnet(network, Number(prefix), family === 4 ? "ipv4" : "ipv6");
    }
    for (const address of locals) {
      const family = isIP(address);
      if (family !== 0) list.addAddress(address, family === 4 ? "ipv4" : "ipv6");
    }
    this.list = list;
    this.builtFrom = from;
    this.remembered = new Map();
  }
}

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((addrs) =>
    (addrs ?? []).map((a) => a.address.split("%")[0]!),
  );
}
