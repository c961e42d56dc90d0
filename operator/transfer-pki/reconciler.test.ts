import { describe, expect, it } from "vitest";
import { createCa, issueNodeCert, SECRET_KEYS } from "../../kit/pki.ts";
import { needsIssue } from "./reconciler.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("when a node's transfer certificate is (re)issued", () => {
  it("issues a missing or incomplete one, one from another CA, and one close to expiry; keeps a good one", async () => {
    const ca = await createCa("skein-transfer-ca");
    const other = await createCa("skein-transfer-ca");
    const cert = await issueNodeCert(ca, "n1", 365);
    const secret = (c = cert, caPem = ca.certPem) => ({
      data: {
        [SECRET_KEYS.ca]: b64(caPem),
        [SECRET_KEYS.cert]: b64(c.certPem),
        [SECRET_KEYS.key]: b64(c.keyPem),
      },
    });
    expect(needsIssue(undefined, ca.certPem)).toBe(true);
    expect(needsIssue({ data: { [SECRET_KEYS.cert]: b64(cert.certPem) } }, ca.certPem)).toBe(true);
    expect(needsIssue(secret(cert, other.certPem), ca.certPem)).toBe(true);
    expect(needsIssue(secret(await issueNodeCert(ca, "n1", 10)), ca.certPem)).toBe(true);
    expect(needsIssue(secret(), ca.certPem)).toBe(false);
  });
});
