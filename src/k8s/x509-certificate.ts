// X.509 v3 certificates built with node:crypto alone (RFC 5280), because `kubetun install` runs on the user's
// laptop, where openssl may be missing: a self-signed CA and server certificates signed by it, EC P-256 keys,
// ecdsa-with-SHA256. Node can read certificates (X509Certificate) but not write them, so the DER is built here.

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  objectIdentifier,
  octetString,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
  type Der,
} from './der.js';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

// KeyUsage bits, numbered from the most significant bit of the first byte (RFC 5280 §4.2.1.3).
const DIGITAL_SIGNATURE = 0x80;
const KEY_CERT_SIGN = 0x04;
const CRL_SIGN = 0x02;

const DAY_MS = 86_400_000;
export const CERTIFICATE_VALIDITY_DAYS = 3650;
// Clocks of the cluster's nodes may lag the laptop's: a certificate is valid from an hour ago.
const BACKDATE_MS = 3_600_000;

/** A certificate and its private key, both PEM (the key PKCS#8). */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

interface Issuer {
  name: string;
  key: KeyObject;
  keyId: Buffer;
}

const signatureAlgorithm = (): Der => sequence(objectIdentifier(OID.ecdsaWithSha256));
const distinguishedName = (commonName: string): Der => sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(commonName))));
const extension = (oid: string, critical: boolean, value: Der): Der =>
  sequence(objectIdentifier(oid), ...(critical ? [boolean(true)] : []), octetString(value));
const keyUsage = (bits: number): Der => bitString(Buffer.from([bits]));

/** RFC 5280 §4.2.1.2 method 1: the SHA-1 of the subjectPublicKey's bits. */
function keyIdentifier(spki: Buffer): Buffer {
  // An EC P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

interface Subject {
  commonName: string;
  ca: boolean;
  dnsNames: readonly string[];
}

function build(subject: Subject, issuer: Issuer | 'self', now: Date): { pair: PemPair; issuer: Issuer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = keyIdentifier(spki);
  const signer: Issuer = issuer === 'self' ? { name: subject.commonName, key: privateKey, keyId } : issuer;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const notBefore = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + CERTIFICATE_VALIDITY_DAYS * DAY_MS);
  const extensions = subject.ca
    ? [
        extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(0))),
        extension(OID.keyUsage, true, keyUsage(DIGITAL_SIGNATURE | KEY_CERT_SIGN | CRL_SIGN)),
        extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
      ]
    : [
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, keyUsage(DIGITAL_SIGNATURE)),
        extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
        extension(OID.subjectAltName, false, sequence(...subject.dnsNames.map((name) => implicitPrimitive(2, Buffer.from(name, 'ascii'))))),
        extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
        extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, signer.keyId))),
      ];
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(serial),
    signatureAlgorithm(),
    distinguishedName(signer.name),
    sequence(time(notBefore), time(notAfter)),
    distinguishedName(subject.commonName),
    spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: signer.key, dsaEncoding: 'der' });
  const certificate = sequence(tbs, signatureAlgorithm(), bitString(signature));
  return {
    pair: { certPem: pem('CERTIFICATE', certificate), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string },
    issuer: { name: subject.commonName, key: privateKey, keyId },
  };
}

/** A certificate authority that signs certificates for nothing else (path length 0). */
export interface CertificateAuthority extends PemPair {
  readonly issuer: Issuer;
}

/** A new self-signed CA, valid for ten years from `now` (backdated an hour). */
export function createCertificateAuthority(commonName: string, now = new Date()): CertificateAuthority {
  const { pair, issuer } = build({ commonName, ca: true, dnsNames: [] }, 'self', now);
  return { ...pair, issuer };
}

/** A TLS server certificate for `dnsNames` (the first is also its common name), signed by `ca`, valid ten years. */
export function issueServerCertificate(ca: CertificateAuthority, dnsNames: readonly [string, ...string[]], now = new Date()): PemPair {
  for (const name of dnsNames) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new Error(`"${name}" is not a DNS name for a certificate`);
  }
  return build({ commonName: dnsNames[0], ca: false, dnsNames }, ca.issuer, now).pair;
}
