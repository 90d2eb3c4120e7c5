// Cognito's SRP-6a password verification (USER_SRP_AUTH, then the PASSWORD_VERIFIER challenge),
// computed exactly as pycognito's aws_srp.py (and amazon-cognito-identity-js) compute it.

// The 3072-bit group of RFC 5054 that Cognito uses, and its generator.
const N_HEX =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
  "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
  "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
  "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
  "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";
const N = BigInt(`0x${N_HEX}`);
const G = 2n;
const HKDF_INFO = "Caldera Derived Key";
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const utf8 = new TextEncoder();

/** Hex for hashing: an even number of digits, and a leading 00 when the high bit is set. */
export function padHex(value) {
  const hex = typeof value === "bigint" ? value.toString(16) : value;
  if (hex.length % 2 === 1) return `0${hex}`;
  return "89abcdefABCDEF".includes(hex[0]) ? `00${hex}` : hex;
}

function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function bytesToBigInt(bytes) {
  return BigInt(`0x${bytesToHex(bytes) || "0"}`);
}

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Base64 as Python's base64.b64decode reads it: characters outside the alphabet are skipped
 * (Cognito sends real base64; the local emulator sends a UUID, dashes and all). */
function base64ToBytes(text) {
  const binary = atob(text.replace(/[^A-Za-z0-9+/=]/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function mod(value, modulus) {
  const r = value % modulus;
  return r < 0n ? r + modulus : r;
}

function modPow(base, exponent, modulus) {
  let result = 1n;
  let b = mod(base, modulus);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** SHA-256 of the bytes a hex string spells, as a 64-digit hex string. */
async function hexHash(hex) {
  return bytesToHex(await sha256(hexToBytes(hex)));
}

async function hmacSha256(keyBytes, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
}

/** HKDF-SHA256 with salt u and info "Caldera Derived Key": the first 16 bytes of one block. */
async function hkdf(ikm, salt) {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const params = { name: "HKDF", hash: "SHA-256", salt, info: utf8.encode(HKDF_INFO) };
  return new Uint8Array(await crypto.subtle.deriveBits(params, key, 128));
}

/** k = H(pad(N) | pad(g)), computed once. */
let multiplier;
function srpMultiplier() {
  multiplier ??= hexHash(padHex(N) + padHex(G)).then((hex) => BigInt(`0x${hex}`));
  return multiplier;
}

/** A fresh secret exponent a (128 random bytes, reduced mod N), as hex. */
export function randomSmallAHex() {
  return (bytesToBigInt(crypto.getRandomValues(new Uint8Array(128))) % N).toString(16);
}

/** The public value A = g^a mod N, as the unpadded hex InitiateAuth's SRP_A takes. */
export function largeAHex(smallAHex) {
  const a = BigInt(`0x${smallAHex}`);
  const largeA = modPow(G, a, N);
  if (largeA === 0n) throw new Error("SRP safety check failed: A is zero.");
  return largeA.toString(16);
}

/** The TIMESTAMP Cognito wants: "Sun Nov 2 09:05:07 UTC 2025" (UTC, day without leading zero). */
export function cognitoTimestamp(date) {
  const two = (n) => String(n).padStart(2, "0");
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
  return (
    `${WEEKDAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()} ` +
    `${time} UTC ${date.getUTCFullYear()}`
  );
}

/**
 * The PASSWORD_VERIFIER answer, a pure function of its inputs (all hex lowercase or uppercase):
 * returns SRP_A (as sent with InitiateAuth) and PASSWORD_CLAIM_SIGNATURE (base64).
 */
export async function passwordClaim({
  userPoolId,
  userIdForSrp,
  password,
  smallAHex,
  saltHex,
  srpBHex,
  secretBlockB64,
  timestamp,
}) {
  const a = BigInt(`0x${smallAHex}`);
  const largeA = BigInt(`0x${largeAHex(smallAHex)}`);
  const largeB = BigInt(`0x${srpBHex}`);
  if (mod(largeB, N) === 0n) throw new Error("SRP safety check failed: B is zero.");

  const u = BigInt(`0x${await hexHash(padHex(largeA) + padHex(largeB))}`);
  if (u === 0n) throw new Error("SRP safety check failed: u is zero.");

  const poolName = userPoolId.split("_")[1];
  const identity = bytesToHex(await sha256(utf8.encode(`${poolName}${userIdForSrp}:${password}`)));
  const x = BigInt(`0x${await hexHash(padHex(saltHex) + identity)}`);
  const k = await srpMultiplier();
  const s = modPow(largeB - k * modPow(G, x, N), a + u * x, N);
  const key = await hkdf(hexToBytes(padHex(s)), hexToBytes(padHex(u)));

  const message = concatBytes(
    utf8.encode(poolName),
    utf8.encode(userIdForSrp),
    base64ToBytes(secretBlockB64),
    utf8.encode(timestamp),
  );
  return {
    srpAHex: largeA.toString(16),
    signatureB64: bytesToBase64(await hmacSha256(key, message)),
  };
}
