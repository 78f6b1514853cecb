/**
 * The rule of PROTOCOL.md §9 (version 2) for a group Welcome naming a group we are already in:
 * accepted only as the answer to our own open rejoin request.
 */
import {
  judgeGroupWelcome,
  newRejoinRequest,
  REJOIN_REQUEST_SECONDS,
  rejoinRequestOpen,
} from '../../framework/relay/rejoin-request.js';
import { memberIsBehind } from '../../framework/relay/rejoin.js';

const committerKey = new Uint8Array(32).fill(1);
const keyPackageRef = new Uint8Array(32).fill(2);
const asked = 1_800_000_000;
const answer = { signerKey: committerKey, consumedRef: keyPackageRef };

test('a Welcome for a group we are not in is a join, whoever signed it', () => {
  expect(judgeGroupWelcome(undefined, answer, asked)).toBe('join');
  expect(judgeGroupWelcome(undefined, { ...answer, signerKey: new Uint8Array(32) }, asked)).toBe('join');
});

test('for a group we are in: the answer to our open request is a rejoin', () => {
  const existing = { rejoinRequest: newRejoinRequest(asked, committerKey, keyPackageRef) };
  expect(judgeGroupWelcome(existing, answer, asked)).toBe('rejoin');
  expect(judgeGroupWelcome(existing, answer, asked + REJOIN_REQUEST_SECONDS - 1)).toBe('rejoin');
});

test('for a group we are in: anything else is a duplicate', () => {
  const existing = { rejoinRequest: newRejoinRequest(asked, committerKey, keyPackageRef) };
  // No request at all (never asked, or cleared on acceptance).
  expect(judgeGroupWelcome({}, answer, asked)).toBe('duplicate');
  // Signed by someone other than the committer we asked.
  expect(judgeGroupWelcome(existing, { ...answer, signerKey: new Uint8Array(32).fill(3) }, asked)).toBe(
    'duplicate',
  );
  // Built on another of our KeyPackages (say the one in our public bundle).
  expect(judgeGroupWelcome(existing, { ...answer, consumedRef: new Uint8Array(32).fill(4) }, asked)).toBe(
    'duplicate',
  );
  // The request lapsed after 10 minutes, or the clock stepped back before it.
  expect(judgeGroupWelcome(existing, answer, asked + REJOIN_REQUEST_SECONDS)).toBe('duplicate');
  expect(judgeGroupWelcome(existing, answer, asked - 1)).toBe('duplicate');
});

test('rejoinRequestOpen: for 10 minutes from the request', () => {
  const request = newRejoinRequest(asked, committerKey, keyPackageRef);
  expect(rejoinRequestOpen(undefined, asked)).toBe(false);
  expect(rejoinRequestOpen(request, asked)).toBe(true);
  expect(rejoinRequestOpen(request, asked + 599)).toBe(true);
  expect(rejoinRequestOpen(request, asked + 600)).toBe(false);
});

test('the request survives the JSON round trip of the group bookkeeping', () => {
  const request = newRejoinRequest(asked, committerKey, keyPackageRef);
  const existing = { rejoinRequest: JSON.parse(JSON.stringify(request)) as typeof request };
  expect(judgeGroupWelcome(existing, answer, asked + 1)).toBe('rejoin');
});

test('memberIsBehind: only an epoch strictly below the group’s', () => {
  expect(memberIsBehind(4n, 5n)).toBe(true);
  expect(memberIsBehind(5n, 5n)).toBe(false);
  expect(memberIsBehind(1n << 40n, 5n)).toBe(false);
});
