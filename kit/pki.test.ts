import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCa, daysLeft, issueNodeCert, nodeOfPeer } from "./pki.ts";

describe("transfer PKI", () => {
  it("issues node certificates that the CA verifies and that name the node", async () => {
    const ca = await createCa("skein-transfer-ca");
    const node = await issueNodeCert(ca, "node-1");
    const cert = new X509Certificate(node.certPem);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.subject).toBe("CN=node-1");
    expect(cert.subjectAltName).toBe("DNS:node-1");
    expect(cert.ca).toBe(false);
    expect(node.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(daysLeft(node.certPem)).toBeGreaterThan(364);
  });

  it("does not verify against another CA", async () => {
    const [ca, other] = [await createCa("a"), await createCa("b")];
    const cert = new X509Certificate((await issueNodeCert(ca, "node-1")).certPem);
    expect(cert.verify(new X509Certificate(other.certPem).publicKey)).toBe(false);
  });

  it.each(["", "Node_1", "-node", "a..b", "x".repeat(254)])("refuses the node name %j", async (name) => {
    const ca = await createCa("ca");
    await expect(issueNodeCert(ca, name)).rejects.toThrow(/not a valid node name/);
  });

  it("reads the node from a peer certificate's subject", () => {
    expect(nodeOfPeer({ subject: { CN: "node-2" } })).toBe("node-2");
    expect(nodeOfPeer({ subject: { CN: ["a", "b"] } })).toBeUndefined();
    expect(nodeOfPeer({ subject: { CN: "Not A Node" } })).toBeUndefined();
    expect(nodeOfPeer(undefined)).toBeUndefined();
  });
});
