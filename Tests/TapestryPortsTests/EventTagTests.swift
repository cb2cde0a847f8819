@testable import TapestryPorts
import Testing

/// Every registration's tag reads back as what it was made for.
@Suite struct EventTagTests {
    @Test func tagsRoundTrip() {
        var tags: [EventTag] = [.stop, .reload, .control]
        for index in [0, 1, 255, 65_535, Int(EventTag.indexMask)] {
            for role in [LivePort.Role.frames, .listening, .sending] { tags.append(.port(index, role)) }
        }
        for tag in tags { #expect(EventTag(raw: tag.raw) == tag, "\(tag)") }
        #expect(Set(tags.map(\.raw)).count == tags.count, "no two registrations share a tag")
    }
}
