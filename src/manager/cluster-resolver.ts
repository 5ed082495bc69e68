// Resolves a client's DNS query in the cluster with the client's namespace search path, as a pod in that
// namespace would: `echo` → `echo.<ns>.svc.<domain>`, `echo.svc.<domain>`, `echo.<domain>`, then `echo` itself
// when it has a dot. The first answer that is not NXDOMAIN wins, and it is returned for the name that was asked
// (question and owner names rewritten), because a resolver drops answers to a question it did not ask.

import {
  DnsFormatError,
  DnsRcode,
  buildDnsMessage,
  errorReply,
  nameEndsWith,
  nameEquals,
  parseDnsMessage,
  rcodeOf,
  textToName,
  type DnsMessage,
  type DnsName,
} from '../dns/dns-message.js';
import type { DnsExchange } from './cluster-dns-client.js';

export interface ResolveContext {
  namespace: string;
  clusterDomain: string;
  exchange: DnsExchange;
}

const MAX_NAME_WIRE_LENGTH = 255;

/** The names to try for `name`, most specific first. */
export function searchCandidates(name: DnsName, namespace: string, clusterDomain: string): DnsName[] {
  const domain = textToName(clusterDomain);
  if (nameEndsWith(name, domain)) return [name];
  const candidates = [
    [...name, ...textToName(namespace), 'svc', ...domain],
    [...name, 'svc', ...domain],
    [...name, ...domain],
  ];
  if (name.length > 1) candidates.push(name);
  return candidates.filter((c) => c.reduce((sum, label) => sum + label.length + 1, 1) <= MAX_NAME_WIRE_LENGTH);
}

function rewriteOwner(message: DnsMessage, from: DnsName, to: DnsName): DnsMessage {
  const rename = <T extends { name: DnsName }>(item: T): T => (nameEquals(item.name, from) ? { ...item, name: to } : item);
  return {
    ...message,
    questions: message.questions.map(rename),
    answers: message.answers.map(rename),
  };
}

/** The wire answer for a wire query; throws DnsFormatError when the query cannot be read. */
export async function resolveInCluster(query: Buffer, context: ResolveContext): Promise<Buffer> {
  const parsed = parseDnsMessage(query);
  if (parsed.questions.length !== 1) throw new DnsFormatError('a query must have exactly one question');
  const asked = parsed.questions[0]!.name;
  const candidates = searchCandidates(asked, context.namespace, context.clusterDomain);
  if (candidates.length === 0) return errorReply(parsed, DnsRcode.NXDOMAIN);
  // All candidates are asked at once: the total time is one round trip, not one per search domain.
  const answers = candidates.map((name) =>
    context
      .exchange(buildDnsMessage({ ...parsed, questions: [{ ...parsed.questions[0]!, name }] }))
      .then(parseDnsMessage),
  );
  for (const answer of answers) answer.catch(() => undefined);
  let last: DnsMessage | undefined;
  let lastName: DnsName = asked;
  try {
    for (let i = 0; i < answers.length; i++) {
      last = await answers[i]!;
      lastName = candidates[i]!;
      if (rcodeOf(last.flags) !== DnsRcode.NXDOMAIN) break;
    }
  } catch {
    return errorReply(parsed, DnsRcode.SERVFAIL);
  }
  return buildDnsMessage({ ...rewriteOwner(last!, lastName, asked), id: parsed.id });
}
