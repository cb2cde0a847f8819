import Foundation
import TapestryProcess
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Children start with a clean signal state in a group of their own, and end when told to.
@Suite struct ChildProcessTests {
    /// The switch's datapath thread blocks SIGINT, SIGTERM and SIGHUP; its children must not.
    @Test func childrenDoNotInheritABlockedSignalMask() throws {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&blocked, signal) }
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let result = ChildProcess.shell("grep -E '^Sig(Blk|Ign)' /proc/self/status")
        var own = sigset_t()
        pthread_sigmask(SIG_SETMASK, &previous, &own)
        #expect(sigismember(&own, SIGTERM) == 1, "the test really blocked SIGTERM while spawning")
        #expect(result.status == 0)
        #expect(result.output.contains("SigBlk:\t0000000000000000"), "\(result.output)")
        // SIGINT (bit 1), SIGHUP (bit 0) and SIGTERM (bit 14) are not ignored either.
        let ignored = result.output.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            .flatMap { UInt64($0.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(ignored.map { $0 & 0x4003 == 0 } == true, "\(result.output)")
    }

    @Test func outputAndStatus() {
        let result = ChildProcess.shell("echo out; echo err >&2; exit 3")
        #expect(result.status == 3)
        #expect(result.output.contains("out") && result.output.contains("err"))
        #expect(ChildProcess.run("/nonexistent/binary", []).status != 0)
    }

    @Test func aTimeoutEndsTheCommand() {
        let start = Date()
        let result = ChildProcess.shell("sleep 30", timeout: 0.5)
        #expect(result.status == 128 + SIGTERM)
        #expect(Date().timeIntervalSince(start) < 10)
        // A command that lets go of its output at once is still bound by the timeout.
        let quiet = Date()
        #expect(ChildProcess.shell("exec sleep 30 > /dev/null 2>&1", timeout: 0.5).status == 128 + SIGTERM)
        #expect(Date().timeIntervalSince(quiet) < 10)
    }

    /// `terminate` reaches what the child started (its process group), and a child that ignores
    /// SIGTERM is killed after the grace period.
    @Test func terminateEndsTheWholeGroup() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(getpid()).txt").path
        defer { unlink(file) }
        let parent = try ChildProcess("/bin/sh", ["-c", "trap '' TERM; sleep 300 & echo $!; wait"], output: .file(file))
        var grandchild: pid_t?
        let deadline = Date().addingTimeInterval(5)
        while grandchild == nil && Date() < deadline {
            grandchild = (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            usleep(20_000)
        }
        let sleeper = try #require(grandchild)
        #expect(kill(sleeper, 0) == 0, "the grandchild runs")
        let status = parent.terminate(grace: 0.5)
        #expect(status == 128 + SIGKILL, "the shell ignores SIGTERM, so it was killed")
        let gone = Date().addingTimeInterval(5)
        while isAlive(sleeper) && Date() < gone { usleep(20_000) }
        #expect(!isAlive(sleeper), "the grandchild (in the child's group) got SIGTERM too")
    }

    /// Alive and not a zombie waiting for its new parent to reap it.
    func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
    }
}
