// resolv.conf as text: read into its parts and written back. Used by the root daemon (its managed resolv.conf),
// the traffic manager (its pod's DNS server and search list) and the sandbox's cluster DNS (its upstream).

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
  /** Lines kept as they are (comments, sortlist). */
  other: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [], other: [] };
  for (const line of text.split('\n')) {
    const [keyword, ...values] = line.trim().split(/\s+/);
    if (keyword === 'nameserver' && values[0] !== undefined) conf.nameservers.push(values[0]);
    else if (keyword === 'search' || keyword === 'domain') conf.search = values;
    else if (keyword === 'options') conf.options.push(...values);
    else if (line.trim() !== '') conf.other.push(line);
  }
  return conf;
}

export function formatResolvConf(conf: ResolvConf, header: string): string {
  const lines = [`# ${header}`, ...conf.other];
  for (const server of conf.nameservers) lines.push(`nameserver ${server}`);
  if (conf.search.length > 0) lines.push(`search ${conf.search.join(' ')}`);
  if (conf.options.length > 0) lines.push(`options ${conf.options.join(' ')}`);
  return lines.join('\n') + '\n';
}
