/**
 * The cluster's transfer PKI: a CA (kept by the operator in a Secret) and one
 * certificate per node, whose subject and SAN are the node name. Node agents
 * present them to each other (mutual TLS), so only nodes the operator vouched
 * for can push or pull a dataset, and a client can check it reached the node
 * it meant to.
 */
import "reflect-metadata";
import { webcrypto, X509Certificate } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { InvalidInputError } from "./errors.ts";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The Secret (in the operator's namespace) that holds the transfer CA. */
export const CA_SECRET = "skein-transfer-ca";
/** The Secret (same namespace) that holds `node`'s transfer certificate. */
export const nodeSecretName = (node: string) => `skein-transfer-${node}`;
/** Keys of those Secrets: a kubernetes.io/tls layout, plus the CA certificate in node Secrets. */
export const SECRET_KEYS = { ca: "ca.crt", cert: "tls.crt", key: "tls.key" } as const;

export interface PemPair {
  certPem: string;
  keyPem: string;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 3600 * 1000;
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  const b64 = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  return webcrypto.subtle.importKey("pkcs8", Buffer.from(b64, "base64"), ALGORITHM, false, ["sign"]);
}

export async function createCa(commonName: string, validDays = 3650): Promise<PemPair> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validDays * DAY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await keyPem(keys.privateKey) };
}

/** A certificate for `node`, good as TLS server and client, signed by `ca`. */
export async function issueNodeCert(ca: PemPair, node: string, validDays = 365): Promise<PemPair> {
  if (!NODE_NAME.test(node) || node.length > 253) {
    throw new InvalidInputError(`"${node}" is not a valid node name (a DNS subdomain)`);
  }
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${node}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: await importKey(ca.keyPem),
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: node }]),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await keyPem(keys.privateKey) };
}

/** The node a peer certificate speaks for (its CN), as Node's TLS socket reports it. */
export function nodeOfPeer(peer: { subject?: { CN?: string | string[] } } | undefined): string | undefined {
  const cn = peer?.subject?.CN;
  return typeof cn === "string" && NODE_NAME.test(cn) ? cn : undefined;
}

/** Days until `certPem` expires (negative once it has): for renewal and alerts. */
export function daysLeft(certPem: string, now = Date.now()): number {
  return (Date.parse(new X509Certificate(certPem).validTo) - now) / DAY_MS;
}
