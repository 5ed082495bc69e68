// The agent injector's TLS: a CA of its own (the MutatingWebhookConfiguration's caBundle) and the manager's
// serving certificate for its Service's names, kept together in one Secret so that the mounted certificate and
// the caBundle always belong together. A later install reuses them while they are valid.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createCertificateAuthority, issueServerCertificate } from './x509-certificate.js';

export interface WebhookTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** The Secret's keys: a kubernetes.io/tls Secret's two, and the CA beside them. */
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';
export const CA_CERT_KEY = 'ca.crt';

// A certificate this close to its end is replaced at the next install rather than reused.
const RENEW_BEFORE_MS = 30 * 86_400_000;

/** The names the API server calls the webhook by: its Service's, short and full. */
export function webhookDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): [string, string] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}

export function createWebhookTls(dnsNames: readonly [string, ...string[]], now = new Date()): WebhookTls {
  const ca = createCertificateAuthority('kubetun agent injector CA', now);
  const server = issueServerCertificate(ca, dnsNames, now);
  return { caPem: ca.certPem, certPem: server.certPem, keyPem: server.keyPem };
}

/**
 * Why the stored TLS cannot serve the webhook any more (a missing part, a certificate not signed by the CA,
 * a key that does not belong to it, a name missing, expiry within 30 days), or null when it can be reused.
 */
export function webhookTlsProblem(tls: Partial<WebhookTls>, dnsNames: readonly string[], now = new Date()): string | null {
  if (!tls.caPem || !tls.certPem || !tls.keyPem) return 'it lacks a part (ca.crt, tls.crt, tls.key)';
  try {
    const ca = new X509Certificate(tls.caPem);
    const cert = new X509Certificate(tls.certPem);
    if (!ca.ca || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'its certificate is not signed by its CA';
    if (!cert.checkPrivateKey(createPrivateKey(tls.keyPem))) return 'its key does not belong to its certificate';
    const missing = dnsNames.find((name) => cert.checkHost(name, { wildcards: false }) === undefined);
    if (missing !== undefined) return `its certificate is not for ${missing}`;
    const soonest = Math.min(Date.parse(ca.validTo), Date.parse(cert.validTo));
    if (soonest - now.getTime() < RENEW_BEFORE_MS) return 'it expires within 30 days';
    if (Date.parse(cert.validFrom) > now.getTime()) return 'its certificate is not valid yet';
  } catch (error) {
    return `it does not parse: ${(error as Error).message}`;
  }
  return null;
}

/** The TLS held in a Secret's `data` (base64 values, as the API gives them). */
export function webhookTlsFromSecretData(data: Record<string, string> | undefined): Partial<WebhookTls> {
  const text = (key: string): string | undefined => (data?.[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8'));
  return { caPem: text(CA_CERT_KEY), certPem: text(TLS_CERT_KEY), keyPem: text(TLS_KEY_KEY) };
}

export function webhookTlsSecretData(tls: WebhookTls): Record<string, string> {
  const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  return { [CA_CERT_KEY]: base64(tls.caPem), [TLS_CERT_KEY]: base64(tls.certPem), [TLS_KEY_KEY]: base64(tls.keyPem) };
}
