//! SecAgg+ messages and their strict payload codecs.
//!
//! Integers are big-endian except the masked vector, whose words are
//! little-endian (native on every supported platform, so encoding is a copy).
//! Lists keyed by party id are strictly ascending, which makes encodings
//! canonical and rejects duplicates while parsing.

use super::keys::SHARE_CIPHERTEXT_LEN;
use super::{Step, MAX_LENGTH, MAX_PARTIES};
use crate::error::WireError;
use crate::shamir::Commitments;
use crate::wire::{Envelope, Header, PartyId, ProtocolId, Reader, SessionId, Writer};
use curve25519_dalek::scalar::Scalar;
use std::fmt;

/// Common behaviour of SecAgg+ messages: payload codec and envelope wrapping.
pub trait SecAggMessage: Sized {
    /// The envelope step of this message.
    const STEP: Step;
    /// Encode the payload.
    fn encode(&self) -> Vec<u8>;
    /// Strictly decode a payload written by `sender` (named in errors).
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError>;

    /// Wrap in an (unsigned) envelope.
    fn to_envelope(&self, session: SessionId, sender: PartyId, recipient: PartyId, nonce: u64) -> Envelope {
        Envelope {
            protocol: ProtocolId::SecAgg,
            step: Self::STEP as u8,
            sender,
            recipient,
            session,
            nonce,
            payload: self.encode(),
        }
    }

    /// Decode from an authenticated envelope, checking protocol and step.
    fn from_envelope(env: &Envelope) -> Result<Self, WireError> {
        if env.protocol != ProtocolId::SecAgg || env.step != Self::STEP as u8 {
            return Err(WireError::WrongStep {
                sender: env.sender,
                expected: ProtocolId::SecAgg,
                expected_step: Self::STEP as u8,
                got: env.protocol,
                got_step: env.step,
            });
        }
        Self::decode(&env.payload, env.sender)
    }
}

fn write_ids(w: &mut Writer, ids: &[PartyId]) {
    w.u32(ids.len() as u32);
    for p in ids {
        w.u32(p.0);
    }
}

/// Read a strictly ascending id list.
fn read_ids(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<PartyId>, WireError> {
    let n = r.count_u32(field, MAX_PARTIES)?;
    let mut out: Vec<PartyId> = Vec::with_capacity(n.min(r.remaining() / 4));
    for _ in 0..n {
        let p = PartyId(r.u32(field)?);
        if out.last().is_some_and(|&last| last >= p) {
            return Err(r.invalid(field, "party ids not strictly ascending"));
        }
        out.push(p);
    }
    Ok(out)
}

fn ascending<T>(
    r: &Reader<'_>,
    items: &[T],
    key: impl Fn(&T) -> PartyId,
    field: &'static str,
) -> Result<(), WireError> {
    if items.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        Ok(())
    } else {
        Err(r.invalid(field, "entries not strictly ascending by party id"))
    }
}

fn read_scalar(r: &mut Reader<'_>, field: &'static str) -> Result<Scalar, WireError> {
    let b: [u8; 32] = r.array(field)?;
    Option::from(Scalar::from_canonical_bytes(b)).ok_or_else(|| r.invalid(field, "non-canonical scalar"))
}

/// Round 0, client → server: the client's two X25519 public keys, signed with
/// its Ed25519 identity over `(session, party, enc_pk, mask_pk)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AdvertiseKeys {
    /// The advertising party.
    pub party: PartyId,
    /// X25519 key for share encryption.
    pub enc_pk: [u8; 32],
    /// X25519 key for mask agreement.
    pub mask_pk: [u8; 32],
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

impl AdvertiseKeys {
    fn write(&self, w: &mut Writer) {
        w.u32(self.party.0).raw(&self.enc_pk).raw(&self.mask_pk).raw(&self.signature);
    }
    fn read(r: &mut Reader<'_>) -> Result<AdvertiseKeys, WireError> {
        Ok(AdvertiseKeys {
            party: PartyId(r.u32("advert.party")?),
            enc_pk: r.array("advert.enc_pk")?,
            mask_pk: r.array("advert.mask_pk")?,
            signature: r.array("advert.signature")?,
        })
    }
}

impl SecAggMessage for AdvertiseKeys {
    const STEP: Step = Step::AdvertiseKeys;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(132);
        self.write(&mut w);
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let a = AdvertiseKeys::read(&mut r)?;
        r.finish("AdvertiseKeys")?;
        Ok(a)
    }
}

/// Round 0 result, server → clients: every advert received, ascending by party.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyList {
    /// Adverts (strictly ascending party ids).
    pub adverts: Vec<AdvertiseKeys>,
}

impl SecAggMessage for KeyList {
    const STEP: Step = Step::KeyList;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + 132 * self.adverts.len());
        w.u32(self.adverts.len() as u32);
        for a in &self.adverts {
            a.write(&mut w);
        }
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("key_list.len", MAX_PARTIES)?;
        let mut adverts = Vec::with_capacity(n.min(r.remaining() / 132));
        for _ in 0..n {
            adverts.push(AdvertiseKeys::read(&mut r)?);
        }
        ascending(&r, &adverts, |a| a.party, "key_list")?;
        r.finish("KeyList")?;
        Ok(KeyList { adverts })
    }
}

/// One encrypted share pair (`b` share, `s` share) for `recipient`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EncryptedShare {
    /// Recipient.
    pub recipient: PartyId,
    /// ChaCha20-Poly1305 ciphertext (80 bytes).
    pub ciphertext: Vec<u8>,
}

/// Round 1, client → server: commitments to the two sharing polynomials and
/// one encrypted share pair per neighbour (ascending by recipient).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ShareKeys {
    /// Feldman commitments to the `b_u` polynomial.
    pub commit_b: Commitments,
    /// Feldman commitments to the `s_u` polynomial.
    pub commit_s: Commitments,
    /// Encrypted shares, strictly ascending by recipient.
    pub shares: Vec<EncryptedShare>,
}

impl SecAggMessage for ShareKeys {
    const STEP: Step = Step::ShareKeys;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.commit_b.encode(&mut w);
        self.commit_s.encode(&mut w);
        w.u32(self.shares.len() as u32);
        for s in &self.shares {
            w.u32(s.recipient.0).raw(&s.ciphertext);
        }
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let commit_b = Commitments::decode(&mut r, None)?;
        let commit_s = Commitments::decode(&mut r, Some(commit_b.threshold()))?;
        let n = r.count_u32("shares.len", MAX_PARTIES)?;
        let mut shares = Vec::with_capacity(n.min(r.remaining() / (4 + SHARE_CIPHERTEXT_LEN)));
        for _ in 0..n {
            let recipient = PartyId(r.u32("share.recipient")?);
            let ciphertext = r.take("share.ciphertext", SHARE_CIPHERTEXT_LEN)?.to_vec();
            shares.push(EncryptedShare { recipient, ciphertext });
        }
        ascending(&r, &shares, |s| s.recipient, "shares")?;
        r.finish("ShareKeys")?;
        Ok(ShareKeys { commit_b, commit_s, shares })
    }
}

/// One dealer's commitments and encrypted share pair, as forwarded by the server.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ForwardedShare {
    /// The dealer.
    pub dealer: PartyId,
    /// Dealer's commitments to `b`.
    pub commit_b: Commitments,
    /// Dealer's commitments to `s`.
    pub commit_s: Commitments,
    /// Ciphertext for this recipient.
    pub ciphertext: Vec<u8>,
}

/// Round 1 result, server → one client: the share pairs dealt to it,
/// ascending by dealer. The dealers listed are the round-1 survivors among the
/// client's neighbours.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ForwardedShares {
    /// Forwarded shares (strictly ascending dealers).
    pub shares: Vec<ForwardedShare>,
}

impl SecAggMessage for ForwardedShares {
    const STEP: Step = Step::ForwardedShares;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.shares.len() as u32);
        for s in &self.shares {
            w.u32(s.dealer.0);
            s.commit_b.encode(&mut w);
            s.commit_s.encode(&mut w);
            w.raw(&s.ciphertext);
        }
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("forwarded.len", MAX_PARTIES)?;
        let mut shares = Vec::with_capacity(n.min(r.remaining() / (4 + 8 + 64 + SHARE_CIPHERTEXT_LEN)));
        for _ in 0..n {
            let dealer = PartyId(r.u32("forwarded.dealer")?);
            let commit_b = Commitments::decode(&mut r, None)?;
            let commit_s = Commitments::decode(&mut r, Some(commit_b.threshold()))?;
            let ciphertext = r.take("forwarded.ciphertext", SHARE_CIPHERTEXT_LEN)?.to_vec();
            shares.push(ForwardedShare { dealer, commit_b, commit_s, ciphertext });
        }
        ascending(&r, &shares, |s| s.dealer, "forwarded")?;
        r.finish("ForwardedShares")?;
        Ok(ForwardedShares { shares })
    }
}

/// Round 2, client → server: the masked input vector.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskedInput {
    /// `x_u + PRG(b_u) + Σ ±PRG(s_uv)` mod 2^64.
    pub y: Vec<u64>,
}

impl fmt::Debug for MaskedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskedInput").field("len", &self.y.len()).finish_non_exhaustive()
    }
}

impl MaskedInput {
    /// Check that `env` is a SecAgg masked input (protocol and step only).
    pub fn check_envelope(env: &Envelope) -> Result<(), WireError> {
        MaskedInput::check_header(&env.header())
    }

    /// [`MaskedInput::check_envelope`] on an envelope's fixed fields.
    pub fn check_header(env: &Header) -> Result<(), WireError> {
        if env.protocol != ProtocolId::SecAgg || env.step != Step::MaskedInput as u8 {
            return Err(WireError::WrongStep {
                sender: env.sender,
                expected: ProtocolId::SecAgg,
                expected_step: Step::MaskedInput as u8,
                got: env.protocol,
                got_step: env.step,
            });
        }
        Ok(())
    }

    /// A payload buffer for `len` words: the length prefix, with capacity for
    /// the `8·len` bytes of words (to be appended) and for the envelope header
    /// and signature, so that `SignedEnvelope::into_bytes` does not reallocate
    /// 8·m bytes. The words are appended rather than written over zeros, so
    /// each byte is written once.
    pub(crate) fn payload_buffer(len: usize) -> Vec<u8> {
        let body = 4 + 8 * len;
        let mut out = Vec::with_capacity(body + crate::wire::HEADER_LEN + crate::wire::SIGNATURE_LEN);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out
    }

    /// Strictly parse an encoded masked input of exactly `acc.len()` words and
    /// add it to `acc` (mod 2^64) without materialising the vector.
    pub fn add_encoded(bytes: &[u8], sender: PartyId, acc: &mut [u64]) -> Result<(), WireError> {
        let body = MaskedInput::body(bytes, sender, acc.len())?;
        MaskedInput::add_bodies(acc, 0, &[body]);
        Ok(())
    }

    /// Strictly parse an encoded masked input of exactly `len` words and return
    /// its body: `8·len` bytes, the words little-endian.
    pub fn body(bytes: &[u8], sender: PartyId, len: usize) -> Result<&[u8], WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("masked.len", MAX_LENGTH)?;
        if n != len {
            return Err(r.invalid("masked.len", "vector length differs from the agreed length"));
        }
        let body = r.take("masked.words", n * 8)?;
        r.finish("MaskedInput")?;
        Ok(body)
    }

    /// Add words `offset .. offset + acc.len()` of every body (as returned by
    /// [`MaskedInput::body`]) to `acc`, mod 2^64. Disjoint ranges of a sum may
    /// be processed on different threads. Words a body lacks are skipped.
    pub fn add_bodies(acc: &mut [u64], offset: usize, bodies: &[&[u8]]) {
        const STEP: usize = 2048; // words of `acc` kept in L1 while the bodies stream past
        for (c, chunk) in acc.chunks_mut(STEP).enumerate() {
            let start = offset.saturating_add(c * STEP).saturating_mul(8);
            for body in bodies {
                let words = body.get(start..).unwrap_or_default().chunks_exact(8).map(|w| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(w);
                    u64::from_le_bytes(a)
                });
                for (a, w) in chunk.iter_mut().zip(words) {
                    *a = a.wrapping_add(w);
                }
            }
        }
    }
}

impl SecAggMessage for MaskedInput {
    const STEP: Step = Step::MaskedInput;
    fn encode(&self) -> Vec<u8> {
        const STEP: usize = 1024; // words converted per pass into an 8 KiB stack buffer
        let mut out = MaskedInput::payload_buffer(self.y.len());
        let mut bytes = [0u8; STEP * 8];
        for words in self.y.chunks(STEP) {
            for (c, w) in bytes.chunks_exact_mut(8).zip(words) {
                c.copy_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(bytes.get(..8 * words.len()).unwrap_or_default());
        }
        out
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("masked.len", MAX_LENGTH)?;
        let body = r.take("masked.words", n * 8)?;
        r.finish("MaskedInput")?;
        let y = body
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        Ok(MaskedInput { y })
    }
}

/// Round 2 result, server → survivors: the set `U3` of parties whose masked
/// input arrived (ascending).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConsistencyRequest {
    /// Survivors.
    pub survivors: Vec<PartyId>,
}

impl SecAggMessage for ConsistencyRequest {
    const STEP: Step = Step::ConsistencyRequest;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_ids(&mut w, &self.survivors);
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let survivors = read_ids(&mut r, "survivors")?;
        r.finish("ConsistencyRequest")?;
        Ok(ConsistencyRequest { survivors })
    }
}

/// Round 3a, client → server: Ed25519 signature over `(session, U3)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConsistencySignature {
    /// Signature.
    pub signature: [u8; 64],
}

impl SecAggMessage for ConsistencySignature {
    const STEP: Step = Step::ConsistencySignature;
    fn encode(&self) -> Vec<u8> {
        self.signature.to_vec()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let signature = r.array("consistency.signature")?;
        r.finish("ConsistencySignature")?;
        Ok(ConsistencySignature { signature })
    }
}

/// Round 3a result, server → signers: the survivor set, the parties the server
/// considers dropped after round 1, and the collected signatures over the survivor set.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnmaskRequest {
    /// `U3`, ascending.
    pub survivors: Vec<PartyId>,
    /// `U2 \ U3`, ascending.
    pub dropped: Vec<PartyId>,
    /// `(signer, signature)`, strictly ascending signers.
    pub signatures: Vec<(PartyId, [u8; 64])>,
}

impl SecAggMessage for UnmaskRequest {
    const STEP: Step = Step::UnmaskRequest;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_ids(&mut w, &self.survivors);
        write_ids(&mut w, &self.dropped);
        w.u32(self.signatures.len() as u32);
        for (p, s) in &self.signatures {
            w.u32(p.0).raw(s);
        }
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let survivors = read_ids(&mut r, "survivors")?;
        let dropped = read_ids(&mut r, "dropped")?;
        let n = r.count_u32("signatures.len", MAX_PARTIES)?;
        let mut signatures = Vec::with_capacity(n.min(r.remaining() / 68));
        for _ in 0..n {
            signatures.push((PartyId(r.u32("signature.party")?), r.array("signature")?));
        }
        ascending(&r, &signatures, |s| s.0, "signatures")?;
        r.finish("UnmaskRequest")?;
        Ok(UnmaskRequest { survivors, dropped, signatures })
    }
}

/// Round 3b, client → server: revealed shares, as `(owner, share value)` with
/// the share index being the sender. `b` shares are of survivors, `s` shares of
/// dropped parties; a party never appears in both lists.
#[derive(Clone, PartialEq, Eq)]
pub struct UnmaskShares {
    /// Shares of survivors' self-mask seeds (strictly ascending owners).
    pub b_shares: Vec<(PartyId, Scalar)>,
    /// Shares of dropped parties' masking keys (strictly ascending owners).
    pub s_shares: Vec<(PartyId, Scalar)>,
}

impl fmt::Debug for UnmaskShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |v: &[(PartyId, Scalar)]| v.iter().map(|(p, _)| *p).collect::<Vec<_>>();
        f.debug_struct("UnmaskShares")
            .field("b_owners", &ids(&self.b_shares))
            .field("s_owners", &ids(&self.s_shares))
            .field("values", &"<redacted>")
            .finish()
    }
}

impl SecAggMessage for UnmaskShares {
    const STEP: Step = Step::UnmaskShares;
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for list in [&self.b_shares, &self.s_shares] {
            w.u32(list.len() as u32);
            for (p, v) in list {
                w.u32(p.0).raw(v.as_bytes());
            }
        }
        w.into_bytes()
    }
    fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, Some(sender));
        let mut lists = [Vec::new(), Vec::new()];
        for (list, field) in lists.iter_mut().zip(["b_shares", "s_shares"]) {
            let n = r.count_u32(field, MAX_PARTIES)?;
            list.reserve(n.min(r.remaining() / 36));
            for _ in 0..n {
                let p = PartyId(r.u32(field)?);
                list.push((p, read_scalar(&mut r, field)?));
            }
            ascending(&r, list, |s| s.0, field)?;
        }
        r.finish("UnmaskShares")?;
        let [b_shares, s_shares] = lists;
        Ok(UnmaskShares { b_shares, s_shares })
    }
}
