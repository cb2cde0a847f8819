import Foundation
import Testing
import TapestryPcap
import TapestryTestSupport
import TapestryTopology
import TapestryWire
import Yams
@testable import TapestryFrameSyntax

/// The frame syntax: building with defaults, decoding every field, and decode -> text -> parse ->
/// build giving back the same bytes for every frame of the project's own captures.
@Suite struct FrameSyntaxTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Parses one frame written in the syntax (a YAML mapping).
    static func parse(_ text: String, file: String = "frame.yaml") -> Result<FrameSpec, TopologyErrors> {
        let (root, diagnostics) = TopologyLoader.compose(yaml: text, file: file)
        guard let root, diagnostics.isEmpty else { return .failure(TopologyErrors(diagnostics)) }
        var reader = FrameSpecReader(file: file)
        guard let (spec, _) = reader.frame(root) else { return .failure(TopologyErrors(reader.diagnostics)) }
        return .success(spec)
    }

    @Test func defaultsMakeAValidFrame() throws {
        let spec = try Self.parse("""
            eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:03 }
            ipv4: { src: 10.0.10.1, dst: 10.0.20.5 }
            tcp: { sport: 40000, dport: 22 }
            """).get()
        let bytes = try spec.build()
        #expect(bytes.count == 60)
        #expect(Array(bytes[0..<14]) == [2, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 1, 0x08, 0x00])
        #expect(Array(bytes[14..<24]) == [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6], "version, length 40, id 0, no DF, TTL 64, TCP")
        #expect(Array(bytes[26..<38]) == [10, 0, 10, 1, 10, 0, 20, 5, 0x9C, 0x40, 0, 22], "addresses and ports")
        #expect(Array(bytes[46..<50]) == [0x50, 0x02, 0xFF, 0xFF], "data offset 5, flags S, window 65535")
        #expect(Self.checksumsValid(bytes))
        #expect(FrameSpec.decode(bytes).text() == """
            eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:03, type: 0x0800 }
            ipv4: { src: 10.0.10.1, dst: 10.0.20.5, ttl: 64, tos: 0, id: 0, df: false, mf: false, frag: 0, proto: 6 }
            tcp: { sport: 40000, dport: 22, seq: 0, ack: 0, flags: S, window: 65535 }
            """, "decode gives every field (a correct checksum is the default)")
    }

    @Test func errorsNameLineColumnAndSuggest() {
        guard case .failure(let errors) = Self.parse("""
            eth: { src: 02:00:00:00:00:01, dts: 02:00:00:00:00:03 }
            ipv4: { src: 10.0.10.1, dst: 10.0.300.5, ttl: 256 }
            tpc: { sport: 40000 }
            udp: { sport: 1, dport: 2 }
            payload: { hex: "abc" }
            """) else {
            Issue.record("parsed")
            return
        }
        #expect(errors.diagnostics.map(\.description) == [
            "frame.yaml:1:32: error: unknown key 'dts' in eth (did you mean 'dst'?); allowed: src, dst, type",
            "frame.yaml:2:30: error: ipv4.dst '10.0.300.5' is not an IPv4 address",
            "frame.yaml:2:47: error: ipv4.ttl 256 is out of range 0...255",
            "frame.yaml:3:1: error: unknown key 'tpc' in a frame (did you mean 'tcp'?); allowed: eth, vlan, arp, ipv4, ipv6, tcp, udp, icmp, icmpv6, payload, raw, pad",
            "frame.yaml:5:17: error: payload has an odd number of hex digits",
        ], "\(errors)")
    }

    @Test func aFrameTooLongToBuildIsAnError() {
        let text = "eth: { src: 02:00:00:00:00:01 }\nipv4: { src: 10.0.0.1, dst: 10.0.0.2 }\nudp: { dport: 9 }\npayload: \"" + String(repeating: "x", count: 65_508) + "\"\n"
        guard case .failure(let errors) = Self.parse(text) else {
            Issue.record("built")
            return
        }
        #expect(errors.description.contains("this frame cannot be built: the udp datagram would be 65516 bytes, more than 65,535") ||
                errors.description.contains("this frame cannot be built: the ipv4 packet would be"), "\(errors)")
    }

    /// Every frame of every capture in the repository: decode, render, parse, build: the same bytes.
    /// A VXLAN port's raw-IPv4 captures contribute the inner frames of their packets.
    @Test func everyProjectCaptureRoundTrips() throws {
        let folders = [Self.root.appendingPathComponent("Tests/TapestryReplayTests/Scenarios"), Self.root.appendingPathComponent("examples")]
        var captures: [URL] = []
        for folder in folders {
            let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)
            while let url = walker?.nextObject() as? URL {
                if url.pathExtension == "pcap" || url.pathExtension == "pcapng" { captures.append(url) }
            }
        }
        try #require(captures.count > 50, "found \(captures.count) captures")
        var frames = 0
        var raw = 0
        for capture in captures {
            let underlay = (try? PcapReader(path: capture.path, linkType: .rawIPv4))?.fileLinkType == .rawIPv4
            let reader = try PcapReader(path: capture.path, linkType: underlay ? .rawIPv4 : .ethernet)
            while let record = try reader.next() {
                var bytes = Array(record.bytes)
                if underlay {
                    guard case .success(let outer) = VXLAN.decodeUnderlay(record.bytes, port: VXLAN.defaultPort),
                        outer.payload.count > VXLAN.headerLength
                    else { continue }
                    bytes = Array(record.bytes[(outer.payload.lowerBound + VXLAN.headerLength)..<outer.payload.upperBound])
                }
                let spec = FrameSpec.decode(bytes)
                let text = spec.text()
                let parsed = Self.parse(text, file: capture.lastPathComponent)
                guard case .success(let back) = parsed else {
                    Issue.record("\(capture.path) frame \(reader.framesRead): \(parsed)\n\(text)")
                    continue
                }
                #expect(try back.build() == bytes, "\(capture.path) frame \(reader.framesRead):\n\(text)")
                frames += 1
                if spec.raw != nil { raw += 1 }
            }
        }
        print("round trip: \(frames) frames of \(captures.count) captures, \(raw) as raw")
        #expect(frames > 300)
        #expect(raw * 20 < frames, "\(raw) of \(frames) frames only decode as raw")
    }

    @Test func icmpErrorsQuoteAndNeighbourDiscoveryTargets() throws {
        let spec = try Self.parse("""
            eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }
            ipv4: { src: 10.0.0.254, dst: 10.0.0.1 }
            icmp: { type: dest-unreach, code: 3, quote: { ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, udp: { sport: 5000, dport: 53 } } }
            """).get()
        let bytes = try spec.build()
        #expect(bytes.count == 14 + 20 + 8 + 28)
        #expect(bytes[34] == 3 && bytes[35] == 3)
        #expect(FrameSpec.decode(bytes).text().contains("icmp: { type: dest-unreach, code: 3, quote: { ipv4: { src: 10.0.0.1, dst: 10.0.0.2"))
        let nd = try Self.parse("""
            eth: { src: 02:00:00:00:00:01, dst: 33:33:ff:00:00:02 }
            ipv6: { src: "fe80::1", dst: "ff02::1:ff00:2", hlim: 255 }
            icmpv6: { type: neighbor-solicit, target: "fe80::2" }
            """).get()
        let ndBytes = try nd.build()
        #expect(Self.checksumsValid(ndBytes))
        #expect(FrameSpec.decode(ndBytes).text().contains("icmpv6: { type: neighbor-solicit, code: 0, target: \"fe80::2\" }"))
        // An advertisement's R, S and O flags round trip as letters; they belong to advertisements only.
        let advert = try Self.parse("""
            eth: { src: 02:00:00:00:00:02, dst: 02:00:00:00:00:01 }
            ipv6: { src: "fe80::2", dst: "fe80::1", hlim: 255 }
            icmpv6: { type: neighbor-advert, target: "fe80::2", flags: SO }
            payload: { hex: "02 01 02 00 00 00 00 02" }
            """).get()
        let advertBytes = try advert.build()
        #expect(advertBytes[58] == 0x60 && Self.checksumsValid(advertBytes))
        let advertText = FrameSpec.decode(advertBytes).text()
        #expect(advertText.contains("icmpv6: { type: neighbor-advert, code: 0, target: \"fe80::2\", flags: SO }"), "\(advertText)")
        #expect(try Self.parse(advertText).get().build() == advertBytes)
        let head = "eth: { src: 02:00:00:00:00:02, dst: 02:00:00:00:00:01 }\nipv6: { src: \"fe80::2\", dst: \"fe80::1\" }\n"
        for (flags, message) in [("SX", "must be letters of R, S, O"), ("SS", "names S twice")] {
            guard case .failure(let errors) = Self.parse(head + "icmpv6: { type: neighbor-advert, target: \"fe80::2\", flags: \(flags) }") else {
                Issue.record("flags \(flags) accepted")
                continue
            }
            #expect(errors.description.contains(message), "\(errors)")
        }
        guard case .failure(let misplaced) = Self.parse(head + "icmpv6: { type: neighbor-solicit, target: \"fe80::2\", flags: S }") else {
            Issue.record("flags on a solicitation accepted")
            return
        }
        #expect(misplaced.description.contains("icmpv6.flags are a neighbor advertisement's"), "\(misplaced)")
        let double = try Self.parse("""
            eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }
            vlan: [{ vid: 100, tpid: 0x88a8 }, { vid: 10, pcp: 5 }]
            ipv6: { src: "2001:db8::1", dst: "2001:db8::2", frag: { id: 7, offset: 8, more: true } }
            payload: { hex: "00 01 02 03 04 05 06 07" }
            """).get()
        let doubleBytes = try double.build()
        #expect(Array(doubleBytes[12..<20]) == [0x88, 0xA8, 0x00, 100, 0x81, 0x00, 0xA0, 10])
        #expect(FrameSpec.decode(doubleBytes) == FrameSpec.decode(try Self.parse(FrameSpec.decode(doubleBytes).text()).get().build()))
    }
}

extension FrameSyntaxTests {
    /// Found by an attacker's review: ICMP errors quoting ICMP errors 800 deep took decode cubic
    /// time and then overflowed the stack. Only the outer quote is decoded as a packet now.
    @Test func nestedQuotesDecodeQuickly() throws {
        var inner: [UInt8] = [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 9] + [0, 1, 0, 53, 0, 8, 0, 0]
        for _ in 0..<800 {
            let icmp: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0] + inner
            let total = 20 + icmp.count
            inner = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2] + icmp
        }
        let frame = [UInt8](repeating: 0xFF, count: 6) + [2, 0, 0, 0, 0, 1, 0x08, 0x00] + inner
        let start = ContinuousClock.now
        let spec = FrameSpec.decode(frame)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(try spec.build() == frame)
        #expect(spec.text().contains("quote: { ipv4:"), "the outer quote is a packet")
    }

    static func checksumsValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { frame in
            let parsed = FrameParser.parse(frame)
            return parsed.isValid && ChecksumVerifier.ipv4HeaderIsValid(frame, parsed) != false
                && ChecksumVerifier.l4IsValid(frame, parsed) != false
        }
    }
}
