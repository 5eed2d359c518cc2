// Checks one auditexport digest with nothing but Node.js's standard library
// (zlib and crypto), independently of auditexport-agent verify:
//
//   node verify.mjs --keys signing-keys.json [--previous PREVIOUS.json.gz] DIGEST.json.gz
//
// signing-keys.json is what the agent's GET /v1/signing-keys returns. The
// digest files are the objects as stored, for example from
//   aws s3 cp s3://BUCKET/PREFIX/_auditexport/digests/DEST/2025/01/31/DEST_20250131T13Z.json.gz .
// (the aws CLI keeps the gzip bytes). It exits 0 when the digest's signature
// is valid for a published key that was valid when the digest was made and,
// with --previous, when the digest links to that previous digest; 1 otherwise.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { parseArgs } from 'node:util';

const ROTATION_GRACE_MS = 5 * 60 * 1000; // a key signs for 5 minutes past its not_after

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// A digest is gzip text of exactly two lines, each ending in "\n": the
// document, then {"algorithm","key_id","signature"}. The signature covers
// the bytes of the first line, without its newline, exactly as stored.
function readDigest(path) {
  const stored = readFileSync(path);
  const plain = gunzipSync(stored);
  const first = plain.indexOf(0x0a);
  const second = first < 0 ? -1 : plain.indexOf(0x0a, first + 1);
  if (first < 0 || second !== plain.length - 1) {
    fail(`${path}: want exactly two lines, each ending in a newline`);
  }
  const signed = plain.subarray(0, first);
  return {
    stored,
    signed,
    doc: JSON.parse(signed.toString('utf8')),
    sig: JSON.parse(plain.subarray(first + 1, second).toString('utf8')),
  };
}

const { values, positionals } = parseArgs({
  options: { keys: { type: 'string' }, previous: { type: 'string' } },
  allowPositionals: true,
});
if (!values.keys || positionals.length !== 1) {
  fail('usage: node verify.mjs --keys signing-keys.json [--previous PREVIOUS.json.gz] DIGEST.json.gz');
}

const { signed, doc, sig } = readDigest(positionals[0]);
if (doc.format !== 'auditexport-digest/1') fail(`unknown format ${doc.format}`);
if (sig.algorithm !== 'Ed25519') fail(`unknown algorithm ${sig.algorithm}`);
if (sig.key_id !== doc.signing_key_id) fail(`the signature line names key ${sig.key_id}, the document ${doc.signing_key_id}`);

// The key set: a key's id is the first 16 hex digits of the SHA-256 of its
// 32 raw bytes.
const keys = JSON.parse(readFileSync(values.keys, 'utf8')).keys;
const key = keys.find((k) => k.key_id === sig.key_id);
if (!key) fail(`signed with key ${sig.key_id}, which is not among the published keys`);
const raw = Buffer.from(key.public_key, 'base64');
if (key.algorithm !== 'Ed25519' || raw.length !== 32) fail(`key ${key.key_id} is not an Ed25519 key`);
if (sha256(raw).slice(0, 16) !== key.key_id) fail(`key ${key.key_id} does not match its id`);

const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
if (!verify(null, signed, publicKey, Buffer.from(sig.signature, 'base64'))) {
  fail(`the signature does not match key ${key.key_id}`);
}

const created = Date.parse(doc.created_at);
if (created < Date.parse(key.not_before) - ROTATION_GRACE_MS ||
    (key.not_after && created > Date.parse(key.not_after) + ROTATION_GRACE_MS)) {
  fail(`created at ${doc.created_at}, outside the validity of key ${key.key_id}`);
}

if (values.previous) {
  // The link is to the previous digest's stored (gzip) bytes and signature.
  const prev = readDigest(values.previous);
  const link = doc.previous;
  if (!link) fail(`the digest starts a chain (${doc.chain_start?.reason}): it has no previous digest`);
  if (link.sha256 !== sha256(prev.stored)) fail(`previous digest's SHA-256 is ${sha256(prev.stored)}, the link says ${link.sha256}`);
  if (link.signature !== prev.sig.signature || link.signing_key_id !== prev.sig.key_id) {
    fail('the link names another signature than the previous digest\'s');
  }
}

const n = doc.objects.length;
console.log(`OK: digest of ${doc.destination_id} for ${doc.hour_start}, ${n} object${n === 1 ? '' : 's'}, ` +
  `seqs ${doc.first_seq}..${doc.last_seq}, signed by ${key.key_id}${values.previous ? ', linked to the previous digest' : ''}`);
