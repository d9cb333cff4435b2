//! Whether the bytes of an elliptic-curve public key from a JWK set name a point a signature
//! check can rely on: a P-256 point on the curve (RFC 8725 §3.4), an Ed25519 point that
//! decodes (RFC 8032 §5.1.3) and is not of small order. ring checks points only while
//! verifying and says nothing about why a check failed, so these run once, when the set is
//! loaded: a bad key is a config error, not a stream of 401s. The small-order check is also
//! what keeps EdDSA strict: ring's verification accepts anything for a small-order key when
//! R and S are picked for it.
//!
//! Plain modular arithmetic on public values, written for clarity, not speed or constant time
//! (a key is checked once, and it is public).

/// A number below 2^256: four 64-bit limbs, least significant first.
type U256 = [u64; 4];

/// The P-256 field prime, 2^256 - 2^224 + 2^192 + 2^96 - 1, and the curve's `b` (SEC 2).
const P256_P: U256 = [0xffff_ffff_ffff_ffff, 0x0000_0000_ffff_ffff, 0, 0xffff_ffff_0000_0001];
const P256_B: U256 = [
    0x3bce_3c3e_27d2_604b,
    0x651d_06b0_cc53_b0f6,
    0xb3eb_bd55_7698_86bc,
    0x5ac6_35d8_aa3a_93e7,
];

/// The Ed25519 field prime, 2^255 - 19, and the curve's `d` (RFC 8032 §5.1).
const ED_P: U256 = [
    0xffff_ffff_ffff_ffed,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff_ffff_ffff,
];
const ED_D: U256 = [
    0x75eb_4dca_1359_78a3,
    0x0070_0a4d_4141_d8ab,
    0x8cc7_4079_7779_e898,
    0x5203_6cee_2b6f_fe73,
];

/// The encodings of Ed25519's eight points of small order, sign bit cleared (two of the
/// order-4 and order-8 points differ only by it): y = 1, p - 1, 0 and the two y of order 8.
const ED_SMALL_ORDER: [[u8; 32]; 5] = [
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [0; 32],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
];

/// Whether `(x, y)` (big-endian coordinates) is a point on P-256: both below p, and
/// y² = x³ - 3x + b (mod p).
pub fn on_p256(x: &[u8; 32], y: &[u8; 32]) -> bool {
    let (x, y) = (from_be(x), from_be(y));
    let p = &P256_P;
    if !lt(&x, p) || !lt(&y, p) {
        return false;
    }
    let x3 = mul(&mul(&x, &x, p), &x, p);
    let three_x = add(&add(&x, &x, p), &x, p);
    let right = add(&sub_mod(&x3, &three_x, p), &P256_B, p);
    mul(&y, &y, p) == right
}

/// Whether `a` is an Ed25519 public key a signature check can rely on: a canonical
/// encoding (y below p), of a point on the curve (RFC 8032 §5.1.3), not of small order.
pub fn ed25519_key(a: &[u8; 32]) -> bool {
    let mut y = *a;
    y[31] &= 0x7f;
    if ED_SMALL_ORDER.contains(&y) {
        return false;
    }
    let y = from_le(&y);
    let p = &ED_P;
    if !lt(&y, p) {
        return false;
    }
    // x² = u / v with u = y² - 1, v = d·y² + 1 (v is never 0): a point exists where u / v
    // is a square, that is (u / v)^((p - 1) / 2) is 0 or 1 (Euler's criterion). x = 0 only
    // at y = ±1, which are of small order.
    let one: U256 = [1, 0, 0, 0];
    let y2 = mul(&y, &y, p);
    let u = sub_mod(&y2, &one, p);
    let v = add(&mul(&ED_D, &y2, p), &one, p);
    let p_minus_2 = sub(p, &[2, 0, 0, 0]).0;
    let ratio = mul(&u, &pow(&v, &p_minus_2, p), p);
    let half = shr1(&sub(p, &one).0);
    let euler = pow(&ratio, &half, p);
    euler == one || euler == [0; 4]
}

fn from_be(bytes: &[u8; 32]) -> U256 {
    std::array::from_fn(|i| {
        let at = 24 - 8 * i;
        u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
    })
}

fn from_le(bytes: &[u8; 32]) -> U256 {
    std::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap_or_default()))
}

fn lt(a: &U256, b: &U256) -> bool {
    a.iter().rev().cmp(b.iter().rev()).is_lt()
}

/// `a - b` modulo 2^256, and whether it borrowed.
fn sub(a: &U256, b: &U256) -> (U256, bool) {
    let mut out = [0; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        (out[i], borrow) = (d, b1 || b2);
    }
    (out, borrow)
}

fn shr1(a: &U256) -> U256 {
    std::array::from_fn(|i| a[i] >> 1 | a.get(i + 1).map_or(0, |next| next << 63))
}

/// `a + b mod p`, for `a, b < p`.
fn add(a: &U256, b: &U256, p: &U256) -> U256 {
    let mut out = [0; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        (out[i], carry) = (s, c1 || c2);
    }
    if carry || !lt(&out, p) { sub(&out, p).0 } else { out }
}

/// `a - b mod p`, for `a, b < p`.
fn sub_mod(a: &U256, b: &U256, p: &U256) -> U256 {
    if lt(a, b) { sub(p, &sub(b, a).0).0 } else { sub(a, b).0 }
}

/// `a · b mod p`, for `a, b < p`: the 512-bit product, reduced a bit at a time from the top.
fn mul(a: &U256, b: &U256, p: &U256) -> U256 {
    let mut wide = [0u64; 8];
    for i in 0..4 {
        let mut carry = 0u128;
        for j in 0..4 {
            let t = u128::from(wide[i + j]) + u128::from(a[i]) * u128::from(b[j]) + carry;
            wide[i + j] = t as u64;
            carry = t >> 64;
        }
        wide[i + 4] = carry as u64;
    }
    let mut r: U256 = [0; 4];
    for bit in (0..512).rev() {
        // r < p, so 2r + 1 < 2p: one subtraction brings it back below p. The bit shifted out
        // of r is the 2^256 that the subtraction modulo 2^256 then cancels.
        let out = r[3] >> 63;
        r = [
            r[0] << 1 | (wide[bit / 64] >> (bit % 64) & 1),
            r[1] << 1 | r[0] >> 63,
            r[2] << 1 | r[1] >> 63,
            r[3] << 1 | r[2] >> 63,
        ];
        if out == 1 || !lt(&r, p) {
            r = sub(&r, p).0;
        }
    }
    r
}

/// `a^e mod p`, for `a < p`.
fn pow(a: &U256, e: &U256, p: &U256) -> U256 {
    let mut r: U256 = [1, 0, 0, 0];
    for bit in (0..256).rev() {
        r = mul(&r, &r, p);
        if e[bit / 64] >> (bit % 64) & 1 == 1 {
            r = mul(&r, a, p);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex: &str) -> [u8; 32] {
        std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
    }

    #[test]
    fn arithmetic_agrees_with_known_values() {
        let p = &ED_P;
        // 2^255 = 19 (mod 2^255 - 19), so 2^256 = 38 and (2^128)^2 = 38.
        assert_eq!(mul(&[0, 0, 1, 0], &[0, 0, 1, 0], p), [38, 0, 0, 0]);
        assert_eq!(sub_mod(&[1, 0, 0, 0], &[2, 0, 0, 0], p), sub(p, &[1, 0, 0, 0]).0);
        assert_eq!(add(&sub(p, &[1, 0, 0, 0]).0, &[5, 0, 0, 0], p), [4, 0, 0, 0]);
        // Fermat: a^(p-1) = 1.
        let p_minus_1 = sub(p, &[1, 0, 0, 0]).0;
        assert_eq!(pow(&[12345, 6, 7, 8], &p_minus_1, p), [1, 0, 0, 0]);
        assert_eq!(
            pow(&[12345, 6, 7, 8], &sub(&P256_P, &[1, 0, 0, 0]).0, &P256_P),
            [1, 0, 0, 0]
        );
    }

    #[test]
    fn p256_points() {
        // The generator (SEC 2).
        let gx = bytes("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let gy = bytes("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        assert!(on_p256(&gx, &gy));
        let mut off = gy;
        off[31] ^= 1;
        assert!(!on_p256(&gx, &off));
        assert!(!on_p256(&[0xff; 32], &gy), "x above p");
        assert!(!on_p256(&[0; 32], &[0; 32]));
    }

    #[test]
    fn ed25519_keys() {
        // RFC 8032 §7.1's test keys.
        for key in [
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        ] {
            assert!(ed25519_key(&bytes(key)), "{key}");
        }
        for small in ED_SMALL_ORDER {
            let mut negative = small;
            negative[31] |= 0x80;
            assert!(!ed25519_key(&small) && !ed25519_key(&negative));
        }
        let mut two = [0u8; 32];
        two[0] = 2;
        assert!(!ed25519_key(&two), "y = 2 is not on the curve");
        // y = p + 3 would encode the point of y = 3, but not canonically.
        let above = bytes("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert!(!ed25519_key(&above));
    }
}
