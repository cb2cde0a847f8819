import Foundation
import Testing
import TapestryPorts
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// TAP devices with a real Linux stack on the other side, in a namespace the test creates.
/// Needs root (CI is root); elsewhere each test prints why it skips.
@Suite(.serialized) struct TAPDeviceTests {
    static var isRoot: Bool { geteuid() == 0 }

    static func skipUnlessRoot(_ test: String) -> Bool {
        if isRoot { return false }
        print("skipping \(test): needs root for /dev/net/tun and network namespaces")
        return true
    }

    @discardableResult
    static func sh(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    let suffix = String(getpid() % 100_000)

    @Test func nameLongerThan15IsAClearError() {
        #expect(throws: PortError.self) { try TAPDevice(port: "vm1", name: "a-name-longer-than-15") }
        do {
            _ = try TAPDevice(port: "vm1", name: "a-name-longer-than-15")
        } catch {
            #expect(error.description == "port 'vm1': open tap 'a-name-longer-than-15' failed (device names are 1 to 15 bytes)")
        }
    }

    @Test func createsAnUpDeviceAndRemovesItOnClose() throws {
        if Self.skipUnlessRoot("createsAnUpDeviceAndRemovesItOnClose") { return }
        let name = "tpt-up-\(suffix)"
        let device = try TAPDevice(port: "p", name: name)
        let flags = try String(contentsOfFile: "/sys/class/net/\(name)/flags", encoding: .utf8)
        #expect(UInt32(flags.dropFirst(2).trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)! & 1 == 1, "IFF_UP")
        device.closeDevice()
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(name)"), "closing removed the device")
    }

    @Test func missingNamespaceFailsAndLeavesNothing() throws {
        if Self.skipUnlessRoot("missingNamespaceFailsAndLeavesNothing") { return }
        let name = "tpt-ns-\(suffix)"
        do {
            _ = try TAPDevice(port: "vm2", name: name, netns: "tapestry-no-such-ns")
            Issue.record("attach should fail")
        } catch {
            #expect(error.description.contains("port 'vm2'") && error.description.contains("no such namespace"))
        }
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(name)"))
    }

    /// The device moves into a namespace, a real stack there sends ARP for a neighbour, and the
    /// frame arrives on the switch side of the descriptor.
    @Test func framesFromANamespaceArrive() throws {
        if Self.skipUnlessRoot("framesFromANamespaceArrive") { return }
        let namespace = "tpt-host-\(suffix)"
        let name = "tpt-arp-\(suffix)"
        Self.sh("ip netns del \(namespace) 2>/dev/null")
        #expect(Self.sh("ip netns add \(namespace)") == 0)
        defer { Self.sh("ip netns del \(namespace)") }
        let device = try TAPDevice(port: "h1", name: name, netns: namespace)
        defer { device.closeDevice() }
        #expect(Self.sh("ip -n \(namespace) addr add 10.99.0.1/24 dev \(name)") == 0)
        // Ask for a neighbour that does not exist: the kernel sends ARP requests through the TAP.
        Self.sh("ip netns exec \(namespace) ping -c 2 -W 1 10.99.0.2 >/dev/null 2>&1 &")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var found: ARPView? = nil
        let deadline = Date().addingTimeInterval(5)
        while found == nil && Date() < deadline {
            let count = try buffer.withUnsafeMutableBytes { try device.read(into: $0) }
            guard let count else {
                usleep(20_000)
                continue
            }
            let frame = Array(buffer.prefix(count))
            frame.withUnsafeBytes { bytes in
                let parsed = FrameParser.parse(bytes)
                if parsed.layer3 == .arp, let arp = ARPView(validating: UnsafeRawBufferPointer(rebasing: bytes[Int(parsed.l3Offset)...])),
                    arp.isEthernetIPv4, arp.targetIP == IPv4Address("10.99.0.2")!
                {
                    #expect(arp.operation == 1 && arp.senderIP == IPv4Address("10.99.0.1")!)
                    found = arp
                }
            }
        }
        #expect(found != nil, "an ARP request for 10.99.0.2 arrived within 5 s")
    }
}
