/**
 * Test helper run as its own process: allocates one address for the
 * attachment named on the command line and prints it, so tests can race many
 * real processes against one address store.
 *   node --import tsx allocate.ts <dataDir> <network> <blockCIDR> <gateway> <containerID>
 */
import * as ipv4 from "../../../kit/ipv4.ts";
import { AddressStore } from "../ipam.ts";

const [dataDir, network, block, gateway, containerID] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const store = new AddressStore(dataDir, network);
const { address } = await store.allocate({ containerID, ifname: "eth0" }, ipv4.parseCidr(block), [
  ipv4.parseAddress(gateway),
]);
process.stdout.write(`${address}\n`);
