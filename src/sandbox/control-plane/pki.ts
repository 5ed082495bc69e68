// The control plane's certificates, made with openssl: a CA, the API server's serving certificate, a client
// certificate per component (Kubernetes reads the user from CN and the groups from O), and the service-account
// key pair. The CA and the service-account keys are kept across restarts (tokens and kubeconfigs stay valid);
// the other certificates are made afresh at each start, so a changed address is always in the serving one.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../host-commands.js';
import { ControlPlaneError } from './control-plane-errors.js';

const VALID_DAYS = '3650';

export interface CertificateSubject {
  /** The user name Kubernetes sees. */
  commonName: string;
  /** The groups Kubernetes sees. */
  organizations: readonly string[];
}

export interface KeyPairFiles {
  certFile: string;
  keyFile: string;
}

export interface ControlPlanePki {
  dir: string;
  ca: KeyPairFiles;
  apiserver: KeyPairFiles;
  /** For kubectl and tests: a member of system:masters. */
  admin: KeyPairFiles;
  controllerManager: KeyPairFiles;
  scheduler: KeyPairFiles;
  /** What the API server shows kubelets (for logs, exec and port-forward). */
  apiserverKubeletClient: KeyPairFiles;
  serviceAccountPrivateKey: string;
  serviceAccountPublicKey: string;
}

export const ADMIN_SUBJECT: CertificateSubject = { commonName: 'kubetun-admin', organizations: ['system:masters'] };
export const CONTROLLER_MANAGER_SUBJECT: CertificateSubject = { commonName: 'system:kube-controller-manager', organizations: [] };
export const SCHEDULER_SUBJECT: CertificateSubject = { commonName: 'system:kube-scheduler', organizations: [] };
export const KUBELET_CLIENT_SUBJECT: CertificateSubject = { commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'] };

/** The first address of a service range (the first of a dual-stack pair): the `kubernetes` Service's ClusterIP, which pods dial. */
export function firstServiceAddress(serviceRange: string): string {
  const [base] = (serviceRange.split(',')[0] ?? '').split('/');
  const octets = (base ?? '').split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new ControlPlaneError('PKI_FAILED', `the service range ${serviceRange} is not an IPv4 CIDR such as 10.96.0.0/16`);
  }
  const value = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const first = (value + 1) >>> 0;
  return [first >>> 24, (first >>> 16) & 255, (first >>> 8) & 255, first & 255].join('.');
}

/** The names and addresses the API server's certificate is valid for. */
export function apiserverSubjectAltNames(address: string, serviceRange: string): string[] {
  const names = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'];
  const ips = [...new Set([address, firstServiceAddress(serviceRange), '127.0.0.1'])];
  return [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)];
}

/** The openssl configuration for one certificate: its subject and its v3 extensions. */
export function opensslConfig(subject: CertificateSubject, usage: 'ca' | 'server' | 'client', altNames: readonly string[] = []): string {
  const dn = [...subject.organizations.map((o, i) => `${i}.O = ${o}`), `CN = ${subject.commonName}`];
  const extensions =
    usage === 'ca'
      ? ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign,digitalSignature', 'subjectKeyIdentifier = hash']
      : [
          'basicConstraints = critical,CA:FALSE',
          'keyUsage = critical,digitalSignature,keyEncipherment',
          `extendedKeyUsage = ${usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
          ...(altNames.length > 0 ? [`subjectAltName = ${altNames.join(',')}`] : []),
        ];
  return ['[req]', 'prompt = no', 'distinguished_name = dn', 'x509_extensions = ext', '[dn]', ...dn, '[ext]', ...extensions, ''].join('\n');
}

async function openssl(args: readonly string[], what: string): Promise<void> {
  const result = await runCommand('openssl', args, { allowFailure: true, timeoutMs: 30_000 });
  if (result.code !== 0) {
    throw new ControlPlaneError('PKI_FAILED', `openssl could not make ${what}: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
}

// P-256 keys: as good as RSA here and made in a millisecond.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, files: KeyPairFiles): Promise<void> {
  const config = join(dir, 'ca.cnf');
  writeFileSync(config, opensslConfig({ commonName: 'kubetun sandbox CA', organizations: [] }, 'ca'));
  await openssl(['req', '-x509', ...EC_KEY, '-config', config, '-days', VALID_DAYS, '-keyout', files.keyFile, '-out', files.certFile], 'the CA');
}

/** A key and a certificate signed by `ca`, as `<dir>/<name>.crt` and `.key`. */
export async function makeSigned(
  dir: string,
  name: string,
  ca: KeyPairFiles,
  subject: CertificateSubject,
  usage: 'server' | 'client',
  altNames: readonly string[] = [],
): Promise<KeyPairFiles> {
  const files = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  const config = join(dir, `${name}.cnf`);
  const csr = join(dir, `${name}.csr`);
  writeFileSync(config, opensslConfig(subject, usage, altNames));
  await openssl(['req', '-new', ...EC_KEY, '-config', config, '-keyout', files.keyFile, '-out', csr], `the ${name} key`);
  const serial = `0x${randomBytes(16).toString('hex')}`;
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial, '-days', VALID_DAYS, '-extfile', config, '-extensions', 'ext', '-out', files.certFile],
    `the ${name} certificate`,
  );
  rmSync(csr, { force: true });
  return files;
}

/** Makes (or keeps) every key and certificate the control plane needs, under `dir`. */
export async function ensurePki(dir: string, address: string, serviceRange: string): Promise<ControlPlanePki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  if (!existsSync(ca.certFile) || !existsSync(ca.keyFile)) await makeCa(dir, ca);
  const serviceAccountPrivateKey = join(dir, 'sa.key');
  const serviceAccountPublicKey = join(dir, 'sa.pub');
  if (!existsSync(serviceAccountPrivateKey) || !existsSync(serviceAccountPublicKey)) {
    // RSA: what every service-account token verifier supports.
    await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', serviceAccountPrivateKey], 'the service-account key');
    await openssl(['pkey', '-in', serviceAccountPrivateKey, '-pubout', '-out', serviceAccountPublicKey], 'the service-account public key');
  }
  const kubernetesName = { commonName: 'kube-apiserver', organizations: [] };
  return {
    dir,
    ca,
    apiserver: await makeSigned(dir, 'apiserver', ca, kubernetesName, 'server', apiserverSubjectAltNames(address, serviceRange)),
    admin: await makeSigned(dir, 'admin', ca, ADMIN_SUBJECT, 'client'),
    controllerManager: await makeSigned(dir, 'controller-manager', ca, CONTROLLER_MANAGER_SUBJECT, 'client'),
    scheduler: await makeSigned(dir, 'scheduler', ca, SCHEDULER_SUBJECT, 'client'),
    apiserverKubeletClient: await makeSigned(dir, 'apiserver-kubelet-client', ca, KUBELET_CLIENT_SUBJECT, 'client'),
    serviceAccountPrivateKey,
    serviceAccountPublicKey,
  };
}
