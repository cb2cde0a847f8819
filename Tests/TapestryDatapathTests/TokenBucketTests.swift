import Testing
@testable import TapestryDatapath

/// The ICMP error budget: a burst, then the rate; hostile clocks (a replayed capture's times)
/// neither trap nor refill more than the burst.
@Suite struct TokenBucketTests {
    /// How many of `attempts` takes at `now` succeed.
    func taken(_ bucket: inout TokenBucket, _ attempts: Int, at now: Int64) -> Int {
        var count = 0
        for _ in 0..<attempts where bucket.take(now: now) { count += 1 }
        return count
    }

    @Test func burstThenRate() {
        var bucket = TokenBucket(perSecond: 1_000, burst: 50)
        #expect(taken(&bucket, 60, at: 5_000_000_000) == 50)
        #expect(taken(&bucket, 1, at: 5_000_000_500) == 0, "half a token's time earns nothing")
        #expect(taken(&bucket, 5, at: 5_003_000_000) == 3, "3 ms: 3 tokens")
        #expect(taken(&bucket, 100, at: 9_000_000_000) == 50, "never more than the burst")
    }

    @Test func extremeAndBackwardClocks() {
        var bucket = TokenBucket(perSecond: 1_000, burst: 50)
        #expect(taken(&bucket, 51, at: .max) == 50)
        #expect(taken(&bucket, 1, at: .min + 1) == 0, "backwards: no refill")
        #expect(taken(&bucket, 1, at: .max) == 1, "from the far past to the far future: refilled, no trap")
    }
}
