import Testing
@testable import TapestryDatapath

/// The ICMP error budget: a burst, then the rate; hostile clocks (a replayed capture's times)
/// neither trap nor refill more than the burst.
@Suite struct TokenBucketTests {
    @Test func burstThenRate() {
        var bucket = TokenBucket(perSecond: 1_000, burst: 50)
        #expect((0..<60).filter { _ in bucket.take(now: 5_000_000_000) }.count == 50)
        #expect(!bucket.take(now: 5_000_000_500), "half a token's time earns nothing")
        #expect((0..<5).filter { _ in bucket.take(now: 5_003_000_000) }.count == 3, "3 ms: 3 tokens")
        #expect((0..<100).filter { _ in bucket.take(now: 9_000_000_000) }.count == 50, "never more than the burst")
    }

    @Test func extremeAndBackwardClocks() {
        var bucket = TokenBucket(perSecond: 1_000, burst: 50)
        for _ in 0..<50 { _ = bucket.take(now: .max) }
        #expect(!bucket.take(now: .max))
        #expect(!bucket.take(now: .min + 1), "backwards: no refill")
        #expect(bucket.take(now: .max), "from the far past to the far future: refilled, no trap")
    }
}
