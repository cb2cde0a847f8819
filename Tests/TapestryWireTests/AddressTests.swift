import Testing
import TapestryWire

@Suite struct AddressTests {
    @Test func macParsesAndPrints() {
        let mac = MACAddress("02:00:5E:00:53:aB")
        #expect(mac?.description == "02:00:5e:00:53:ab")
        #expect(MACAddress("02-00-5e-00-53-ab") == mac)
        #expect(MACAddress("02:00:5e:00:53") == nil)
        #expect(MACAddress("02:00:5e:00:53:zz") == nil)
        #expect(MACAddress("020:0:5e:00:53:ab") == nil)
        #expect(MACAddress.broadcast.isMulticast && MACAddress.broadcast.isBroadcast)
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        #expect(!MACAddress("02:00:00:00:00:01")!.isMulticast)
        #expect(MACAddress("02:00:00:00:00:01")!.isLocallyAdministered)
    }

    @Test func ipv4ParsesStrictly() {
        #expect(IPv4Address("10.0.10.100")?.description == "10.0.10.100")
        #expect(IPv4Address("10.0.10.100")?.rawValue == 0x0A00_0A64)
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.01", "10.0.0.-1", "10..0.1", " 10.0.0.1", "a.b.c.d", ""] {
            #expect(IPv4Address(bad) == nil, "\(bad) should not parse")
        }
    }

    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"), ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ])
    func ipv6ParsesAndPrintsPerRFC5952(input: String, canonical: String) {
        #expect(IPv6Address(input)?.description == canonical)
    }

    @Test func ipv6RejectsGarbage() {
        for bad in ["", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::1", "::1.2.3"] {
            #expect(IPv6Address(bad) == nil, "\(bad) should not parse")
        }
    }

    @Test func prefixesParseAndMatch() throws {
        let net = try IPPrefix.parse("10.0.10.0/24").get()
        #expect(net.contains(IPv4Address("10.0.10.77")!))
        #expect(!net.contains(IPv4Address("10.0.11.1")!))
        #expect(try IPPrefix.parse("10.0.20.5").get() == .v4(IPv4Address("10.0.20.5")!, length: 32))
        #expect(try IPPrefix.parse("0.0.0.0/0").get().contains(IPv4Address("10.9.8.7")!))
        #expect(IPPrefix.parse("10.0.0.1/24") == .failure(.hostBitsSet))
        #expect(IPPrefix.parse("10.0.0.0/33") == .failure(.badLength))
        #expect(IPPrefix.parse("10.0.0.300/24") == .failure(.badAddress))
        #expect(IPPrefix.parse("10.0.0.0/") == .failure(.badLength))
        let v6 = try IPPrefix.parse("2001:db8::/32").get()
        #expect(v6.contains(IPv6Address("2001:db8:1::5")!))
        #expect(!v6.contains(IPv6Address("2001:db9::5")!))
        #expect(!v6.contains(IPv4Address("10.0.0.1")!))
        #expect(try IPPrefix.parse("2001:db8::/72").get().contains(IPv6Address("2001:db8::ff")!))
        #expect(IPPrefix.parse("2001:db8::1/64") == .failure(.hostBitsSet))
    }
}
