import Foundation
import TapestryDatapath
import TapestryTopology
import Testing
@testable import TapestryPorts

#if canImport(Glibc)
import Glibc
#endif

/// The socket ports' lifecycle as a value, then a stream port driven through one end of a
/// socketpair: no VM, no process, no epoll loop.
@Suite struct SocketPortLifecycleTests {
    @Test func aStreamPortComesUpClosesAfterItsBatchAndWaitsAgain() {
        var life = SocketPortLifecycle()
        #expect(life.refusal(of: "a", allowedSource: true, peers: "") == nil)
        #expect(life.connected("unix client") == .up(peer: "unix client", replacing: nil))
        #expect(life.isUp && life.peer == "unix client")
        #expect(life.refusal(of: "another", allowedSource: true, peers: "") == "another connected while unix client is: one VM per port")
        #expect(life.refusal(of: "10.9.9.9", allowedSource: false, peers: "10.0.0.0/8") == "10.9.9.9 is not in the port's peers (10.0.0.0/8)")
        #expect(life.connected("another") == .none, "a second VM does not take over")
        life.inputEnded("the peer closed the connection")
        #expect(life.state == .closing(peer: "unix client", reason: "the peer closed the connection"))
        #expect(!life.isUp && life.peer == "unix client", "closing: its last frames still run, still one VM")
        #expect(life.batchRan() == .down(reason: "the peer closed the connection", until: "waiting for a VM to connect"))
        #expect(life.state == .waiting && life.peer == nil)
        #expect(life.batchRan() == .none)
        #expect(life.connectionBroke("write failed") == .none, "nothing to break while waiting")
        #expect(life.connected("third") == .up(peer: "third", replacing: nil))
        #expect(life.connectionBroke("write failed: Broken pipe") == .down(reason: "write failed: Broken pipe", until: "waiting for a VM to connect"))
    }

    @Test func aDatagramPortFollowsItsVM() {
        var life = SocketPortLifecycle()
        #expect(life.peerGone("gone") == .none, "nothing to lose before the first datagram")
        #expect(life.datagram(from: "/run/vm1.sock") == .up(peer: "/run/vm1.sock", replacing: nil))
        #expect(life.datagram(from: "/run/vm1.sock") == .none)
        #expect(life.datagram(from: "/run/vm1-new.sock") == .up(peer: "/run/vm1-new.sock", replacing: "/run/vm1.sock"),
                "a restarted VM on a new path: the old one's MAC entries go")
        #expect(life.peerGone("the VM's socket is gone") == .down(reason: "the VM's socket is gone", until: "it comes back when the VM sends again"))
        #expect(life.state == .gone(peer: "/run/vm1-new.sock", reason: "the VM's socket is gone"))
        #expect(life.peerGone("again") == .none)
        #expect(life.datagram(from: "/run/vm1-new.sock") == .up(peer: "/run/vm1-new.sock", replacing: nil))
    }

    /// A stream port with a socketpair for its VM: frames in, a half frame and a close, the port
    /// down after the batch with the whole frame ran, the half frame counted.
    /// A stream port listening in a temporary folder (removed by `done`), and a socketpair whose
    /// first end it adopts as its VM's connection; the second end is the VM.
    static func portWithVM(_ name: String) throws -> (port: StreamSocketPort, vm: Int32, change: SocketPortLifecycle.Change, done: () -> Void) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-lifecycle-\(name)-\(getpid())")
        let port = try StreamSocketPort(
            port: "vm", endpoint: .unixStream(path: directory.appendingPathComponent("vm.sock").path),
            access: Topology.SocketAccess(), maxFrameLength: 1518)
        var pair: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        let change = port.adoptForTesting(pair[0], from: "a unix client")
        return (port, pair[1], change, {
            port.close()
            try? FileManager.default.removeItem(at: directory)
        })
    }

    @Test func aStreamPortThroughASocketpair() throws {
        let (port, vm, change, done) = try Self.portWithVM("frames")
        defer { done() }
        #expect(change == .up(peer: "a unix client", replacing: nil))
        let frame = [UInt8](repeating: 0xAB, count: 60)
        var bytes = [UInt8](repeating: 0, count: 4) + frame
        bytes[3] = 60
        bytes += [0, 0, 0, 60] + frame.prefix(20)  // a second frame, cut short
        #expect(Glibc.write(vm, bytes, bytes.count) == bytes.count)
        close(vm)
        let batch = FrameBatch(capacity: 4, maxFrameLength: 1518)
        let drops = PortDrops()
        port.receive(into: batch, limit: 4, drops)
        #expect(batch.count == 1 && Array(batch.frame(0)) == frame)
        #expect(port.lifecycle.isUp, "the short read emptied the socket: the end shows at the next read")
        batch.removeAll()
        port.receive(into: batch, limit: 4, drops)
        #expect(batch.isEmpty)
        #expect(drops.reported(.invalid).received == 1, "the cut frame is an invalid drop")
        guard case .closing(_, let reason) = port.lifecycle.state else {
            Issue.record("not closing: \(port.lifecycle.state)")
            return
        }
        #expect(reason.contains("in the middle of a frame (24 of 64 bytes"), "\(reason)")
        #expect(port.isConnected, "still connected until the batch ran")
        #expect(port.batchRan(drops) == .down(reason: reason, until: "waiting for a VM to connect"))
        #expect(!port.isConnected)
    }

    /// A length over the port's frame size ends the connection: the stream is not QEMU's framing.
    @Test func aHostileLengthEndsTheConnection() throws {
        let (port, vm, _, done) = try Self.portWithVM("long")
        defer { done() }
        defer { close(vm) }
        let announce: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3]
        #expect(Glibc.write(vm, announce, announce.count) == announce.count)
        let batch = FrameBatch(capacity: 4, maxFrameLength: 1518)
        let drops = PortDrops()
        port.receive(into: batch, limit: 4, drops)
        #expect(batch.isEmpty)
        guard case .closing(_, let reason) = port.lifecycle.state else {
            Issue.record("not closing: \(port.lifecycle.state)")
            return
        }
        #expect(reason.contains("announced a 2147483647-byte frame, more than 1518"), "\(reason)")
        #expect(drops.reported(.invalid).received == 1)
        #expect(port.batchRan(drops) != .none)
    }
}
