//! The state fingerprint used by the explorer's visited set.

use super::World;

impl World {
    /// The state's fingerprint: a 128-bit hash of its `Debug` text, except three parts of each
    /// machine that cannot change what happens next: its configuration, name and key names
    /// (the same in every state), its `Stats` counters (read by nothing in the machine), and
    /// the reply times it measured (read only to fill `SlowReplies::observed`, a diagnostic no
    /// property and no decision reads). `scratch` is reused between calls.
    pub fn fingerprint(&mut self, scratch: &mut String) -> u128 {
        use std::fmt::Write as _;
        let mut h = Fingerprint::default();
        for (lock, fp) in self.locks.iter().zip(self.lock_fp.iter_mut()) {
            let part = *fp.get_or_insert_with(|| {
                scratch.clear();
                let _ = write!(scratch, "{lock:?}");
                let from = scratch.find(", slots: ").unwrap_or(0);
                let to = scratch.find(", last_reply_time: ").unwrap_or(scratch.len());
                let mut one = Fingerprint::default();
                one.write(&scratch.as_bytes()[from..to]);
                one.finish()
            });
            h.write(&part.to_le_bytes());
        }
        scratch.clear();
        let _ = write!(
            scratch,
            "{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}",
            self.now,
            self.apps,
            self.keys,
            self.restarted_at,
            self.requests,
            self.replies,
            self.resource,
            self.tenures,
            self.op_seq,
            self.budget,
            self.tracked
        );
        h.write(scratch.as_bytes());
        h.finish()
    }
}

/// A fast 128-bit hash of byte strings (two multiply-rotate lanes over 8-byte words and a
/// SplitMix64 finish), good enough for non-adversarial state texts.
#[derive(Default)]
struct Fingerprint {
    a: u64,
    b: u64,
}

impl Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            self.a = (self.a ^ x)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
            self.b = (self.b.rotate_left(17) ^ x).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        }
        self.a ^= bytes.len() as u64;
        self.b = self.b.wrapping_add(bytes.len() as u64);
    }

    fn finish(&self) -> u128 {
        fn mix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        (u128::from(mix(self.a ^ self.b.rotate_left(32))) << 64) | u128::from(mix(self.b))
    }
}
