/// A token bucket on the datapath clock: `perSecond` tokens a second, at most `burst` saved up.
/// A clock that steps backwards refills nothing (and does not trap).
struct TokenBucket {
    let perSecond: Int64
    let burst: Int64
    private var tokens: Int64
    private var last: Int64 = .min

    init(perSecond: Int64, burst: Int64) {
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
    }

    /// Takes one token if there is one.
    mutating func take(now: Int64) -> Bool {
        if last == .min {
            last = now
        } else if now > last {
            // Whole tokens earned since `last`; the remainder of a token's time is kept.
            let nanosecondsPerToken = 1_000_000_000 / perSecond
            let elapsed = now &- last  // negative only when the true difference overflows: long enough
            let earned = elapsed < 0 ? burst : elapsed / nanosecondsPerToken
            if earned >= burst - tokens {
                tokens = burst
                last = now
            } else if earned > 0 {
                tokens += earned
                last = last &+ earned &* nanosecondsPerToken
            }
        } else if now < last {
            last = now
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
