// Fuzzes the TCP (with options), UDP and ICMPv4/v6 parsers on transport bytes as they arrive from the TUN:
// only WireError may be thrown, whatever parses emits and parses back the same, and no input is slow.

import { test } from 'node:test';
import { fuzz } from './fuzz-harness.js';
import {
  checkIcmpv4,
  checkIcmpv6,
  checkTcp,
  checkUdp,
  icmpv4Messages,
  icmpv6Messages,
  isWireError,
  tcpSegments,
  udpDatagrams,
  V4_DST,
  V4_SRC,
  V6_DST,
  V6_SRC,
} from './wire-corpus.js';

/** Option kinds with lengths right and wrong: EOL, NOP, MSS, window scale, SACK-permitted, SACK, timestamp. */
const TCP_OPTION_TOKENS = ['00', '01', '020405b4', '0204', '03030e', '0303', '0402', '0403', '050a0000000100000002', '0522', '080a0000000100000002', '0801', 'fe02', 'ff00']
  .map((h) => Buffer.from(h, 'hex'));

test('fuzz: TCP header and options (IPv4 and IPv6 pseudo-headers)', (t) => {
  fuzz(
    {
      name: 'tcp',
      corpus: [...tcpSegments(V4_SRC, V4_DST), ...tcpSegments(V6_SRC, V6_DST)],
      dictionary: TCP_OPTION_TOKENS,
      maxLength: 0xffff,
      run(input) {
        // One address family per input, by length parity: the pseudo-header is all that differs.
        if (input.length % 2 === 0) checkTcp(input, V4_SRC, V4_DST);
        else checkTcp(input, V6_SRC, V6_DST);
      },
      isParserError: isWireError,
    },
    t,
  );
});

test('fuzz: UDP header', (t) => {
  fuzz(
    {
      name: 'udp',
      corpus: [...udpDatagrams(V4_SRC, V4_DST), ...udpDatagrams(V6_SRC, V6_DST)],
      maxLength: 0xffff,
      run(input) {
        // One address family per input, by length parity: the pseudo-header is all that differs.
        if (input.length % 2 === 0) checkUdp(input, V4_SRC, V4_DST);
        else checkUdp(input, V6_SRC, V6_DST);
      },
      isParserError: isWireError,
    },
    t,
  );
});

test('fuzz: ICMPv4 and ICMPv6 messages', (t) => {
  fuzz(
    {
      name: 'icmp',
      corpus: [...icmpv4Messages(), ...icmpv6Messages(V6_SRC, V6_DST)],
      maxLength: 0xffff,
      run(input) {
        checkIcmpv4(input);
        checkIcmpv6(input, V6_SRC, V6_DST);
      },
      isParserError: isWireError,
    },
    t,
  );
});
