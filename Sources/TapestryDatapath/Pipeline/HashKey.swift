/// The secret that keys the hash of every table an attacker fills from the network: the MAC
/// table, the connection table and the fragment table.
///
/// Without the key, an attacker cannot compute offline which MACs or flows share a bucket, so
/// flooding a table with colliding keys is no cheaper than flooding it with random ones. A live
/// switch picks a key at random when it starts (`random()`, from the kernel's getrandom); replay,
/// `trace` and the tests use `fixed`, and no result depends on which key is used (the tables give
/// the same answers in any bucket order).
///
/// The hash is a folded 128-bit multiply with the key mixed into every input word (the
/// construction of Rust's foldhash and ahash and of wyhash): one key word masks each input word
/// before it is multiplied, so without the key neither the product nor its fold is predictable.
/// It is not a cryptographic PRF; SipHash-1-3 would be, and costs 2.3x as much on a 40-byte flow
/// key (17.3 ns against 7.6 ns a hash in a dependent chain, measured here), which the forwarding
/// path would pay on every frame. See docs/security.md.
public struct HashKey: Sendable, Equatable {
    public var k0: UInt64
    public var k1: UInt64
    public var k2: UInt64
    public var k3: UInt64

    public init(k0: UInt64, k1: UInt64, k2: UInt64, k3: UInt64) {
        (self.k0, self.k1, self.k2, self.k3) = (k0, k1, k2, k3)
    }

    /// Replay, trace and tests: the hexadecimal digits of pi.
    public static let fixed = HashKey(
        k0: 0x243F_6A88_85A3_08D3, k1: 0x1319_8A2E_0370_7344, k2: 0xA409_3822_299F_31D0, k3: 0x082E_FA98_EC4E_6C89)

    /// A fresh secret from the system's random source (getrandom on Linux).
    public static func random() -> HashKey {
        var generator = SystemRandomNumberGenerator()
        return HashKey(k0: generator.next(), k1: generator.next(), k2: generator.next(), k3: generator.next())
    }

    /// Another key derived from this one, so two tables keyed from one secret do not share buckets.
    public func derived(_ salt: UInt64) -> HashKey {
        HashKey(
            k0: Self.fold(k0 ^ salt, k3), k1: Self.fold(k1 ^ salt, k2), k2: Self.fold(k2 ^ salt, k1),
            k3: Self.fold(k3 ^ salt, k0))
    }

    @inline(__always)
    static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// One 64-bit word (a (network, MAC) key): a keyed multiply-shift (`(word ^ k0) * (k1 | 1)`,
    /// the high bits choose the cell), one multiply because every frame pays it twice.
    @inline(__always)
    public func hash(_ word: UInt64) -> UInt64 {
        (word ^ k0) &* (k1 | 1)
    }

    /// Five 64-bit words (a flow key).
    @inline(__always)
    public func hash(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64, _ w4: UInt64) -> UInt64 {
        let first = Self.fold(w0 ^ k0, w1 ^ k1)
        let second = Self.fold(w2 ^ k2, w3 ^ k3)
        return Self.fold(first ^ w4 ^ k1, second ^ k2)
    }
}
