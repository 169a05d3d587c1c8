// What xfer does with the files it writes (docs/CONTRACT.md, "Outputs"), on the built binary:
// outputs are checked before any work, never destroy an input or a non-regular file, and an
// interrupted or failed write leaves the old file or the complete new one, never a temporary.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class OutputSafetyTests: XCTestCase {
    let fixtures = CLI.fixtures
    let training = CLI.root.appendingPathComponent("checkpoints/training")
    var checkpoint: String { fixtures.appendingPathComponent("k2_transfer_functional_bn.h5").path }
    var data: String { training.appendingPathComponent("fit_plain.h5").path }

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock {
            _ = chmod(dir.path, 0o755)
            try? FileManager.default.removeItem(at: dir)
        }
        return dir
    }

    /// A short finetune (1 epoch of 20 samples, a small new head) and more arguments.
    func finetune(_ extra: [String], checkpoint: String? = nil, cwd: URL? = nil) throws -> Run {
        try CLI.run(["finetune", checkpoint ?? self.checkpoint, "--data", data, "--epochs", "1",
                     "--head", "flatten,dense:8:relu"] + extra, cwd: cwd)
    }

    /// The names in `dir` that look like xfer's temporary files.
    func temporaries(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".tmp") }
    }

    func fileType(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    /// The run was refused before any work: exit 2, one error line naming `flag` and `path`, and
    /// nothing on stdout (no plan table, no epoch).
    func assertRefusedBeforeWork(_ r: Run, flag: String, path: String, saying what: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("xfer: error: \(flag) \(path): ") ?? false, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(what), "expected '\(what)' in: \(r.stderr)", file: file, line: line)
        XCTAssertLessThanOrEqual(lines.count, 2, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, "", "nothing was loaded or trained", file: file, line: line)
    }

    // MARK: Outputs that collide with each other or with inputs

    /// `--output X.h5 --csv-log X.h5` used to succeed and leave a CSV where the model should be.
    func testTwoOutputsOnOneFileAreRefusedBeforeWork() throws {
        let dir = try tempDir()
        let r = try finetune(["--output", "X.h5", "--csv-log", "X.h5"], cwd: dir)
        assertRefusedBeforeWork(r, flag: "--csv-log", path: "X.h5", saying: "is also the --output file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("X.h5").path))

        // The same file by another spelling, through a symlink, or through a hard link.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: false)
        assertRefusedBeforeWork(try finetune(["--output", "X.h5", "--plot", "./sub/../X.h5"], cwd: dir),
                                flag: "--plot", path: "./sub/../X.h5", saying: "is also the --output file")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("alias.h5").path, withDestinationPath: "X.h5")
        assertRefusedBeforeWork(try finetune(["--output", "X.h5", "--save-best", "alias.h5"], cwd: dir),
                                flag: "--save-best", path: "alias.h5", saying: "is also the --output file")
        try Data("old".utf8).write(to: dir.appendingPathComponent("model.h5"))
        XCTAssertEqual(link(dir.appendingPathComponent("model.h5").path, dir.appendingPathComponent("hard.h5").path), 0)
        assertRefusedBeforeWork(try finetune(["--output", "model.h5", "--csv-log", "hard.h5"], cwd: dir),
                                flag: "--csv-log", path: "hard.h5", saying: "is also the --output file")
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("model.h5"), encoding: .utf8), "old")
        // The default output counts too.
        assertRefusedBeforeWork(try finetune(["--plot", "k2_transfer_functional_bn-finetuned.h5"], cwd: dir),
                                flag: "--plot", path: "k2_transfer_functional_bn-finetuned.h5", saying: "is also the --output file")
        XCTAssertEqual(temporaries(dir), [])
    }

    /// Every input, by path, symlink or hard link, is refused as an output, before any work,
    /// and left unchanged.
    func testAnOutputNamingAnInputIsRefusedBeforeWork() throws {
        let dir = try tempDir()
        let model = dir.appendingPathComponent("model.h5").path
        try FileManager.default.copyItem(atPath: checkpoint, toPath: model)
        let dataCopy = dir.appendingPathComponent("data.h5").path
        try FileManager.default.copyItem(atPath: data, toPath: dataCopy)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.h5").path, withDestinationPath: model)
        XCTAssertEqual(link(dataCopy, dir.appendingPathComponent("hard.h5").path), 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: model)), dataBefore = try Data(contentsOf: URL(fileURLWithPath: dataCopy))
        func ft(_ args: [String]) throws -> Run {
            try CLI.run(["finetune", "model.h5", "--data", "data.h5", "--epochs", "1", "--head", "flatten,dense:8:relu"] + args, cwd: dir)
        }
        assertRefusedBeforeWork(try ft(["--output", "model.h5"]), flag: "--output", path: "model.h5", saying: "is the checkpoint this command reads")
        assertRefusedBeforeWork(try ft(["--output", model]), flag: "--output", path: model, saying: "is the checkpoint")
        assertRefusedBeforeWork(try ft(["--output", "link.h5"]), flag: "--output", path: "link.h5", saying: "is the checkpoint")
        assertRefusedBeforeWork(try ft(["--csv-log", "data.h5"]), flag: "--csv-log", path: "data.h5", saying: "is the --data input")
        assertRefusedBeforeWork(try ft(["--plot", "hard.h5"]), flag: "--plot", path: "hard.h5", saying: "is the --data input")
        assertRefusedBeforeWork(try ft(["--validation-data", "data.h5", "--save-best", "hard.h5"]),
                                flag: "--save-best", path: "hard.h5", saying: "input")
        // --resume keeps the run's head, so it takes no --head.
        assertRefusedBeforeWork(try CLI.run(["finetune", "model.h5", "--data", "data.h5", "--resume", "--epochs", "3", "--output", "link.h5"], cwd: dir),
                                flag: "--output", path: "link.h5", saying: "is the checkpoint")
        // --config is an input of every command that reads a checkpoint.
        let weights = fixtures.appendingPathComponent("k2_zoo_weights.h5").path, config = fixtures.appendingPathComponent("k2_zoo.json").path
        let configCopy = dir.appendingPathComponent("zoo.json").path
        try FileManager.default.copyItem(atPath: config, toPath: configCopy)
        let configBefore = try Data(contentsOf: URL(fileURLWithPath: configCopy))
        assertRefusedBeforeWork(try CLI.run(["import", weights, "--config", "zoo.json", "--to", "zoo.json"], cwd: dir),
                                flag: "--to", path: "zoo.json", saying: "is the --config input")
        assertRefusedBeforeWork(try CLI.run(["import", "model.h5", "--to", "link.h5"], cwd: dir),
                                flag: "--to", path: "link.h5", saying: "is the checkpoint")
        assertRefusedBeforeWork(try CLI.run(["predict", "model.h5", "--data", "data.h5", "--output", "hard.h5"], cwd: dir),
                                flag: "--output", path: "hard.h5", saying: "is the --data input")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model)), before)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dataCopy)), dataBefore)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: configCopy)), configBefore)
        XCTAssertEqual(fileType(dir.appendingPathComponent("link.h5").path), S_IFLNK)
        XCTAssertEqual(temporaries(dir), [])
    }

    // MARK: Targets that are not regular files, missing and unwritable folders

    /// A device like /dev/null, a FIFO, a socket or a folder as an output is refused (exit 2, flag and path
    /// named) and left as it was; it used to be replaced by a regular file.
    func testNonRegularTargetsAreRefusedAndLeftAlone() throws {
        let dir = try tempDir()
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let socketPath = dir.appendingPathComponent("sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(socketPath.utf8)
            XCTAssertLessThan(bytes.count, raw.count)
            raw.copyBytes(from: bytes)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let folder = dir.appendingPathComponent("folder").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        // A device node of our own (a copy of /dev/null's) where we may make one, so that a
        // regression replaces that node and not the system's /dev/null; else /dev/null itself,
        // which a user who cannot make device nodes cannot replace either.
        var device = dir.appendingPathComponent("null").path
        #if os(Linux)
        let nullDevice = dev_t((1 << 8) | 3)    // makedev(1, 3)
        #else
        let nullDevice = dev_t((3 << 24) | 2)   // makedev(3, 2)
        #endif
        if mknod(device, S_IFCHR | 0o666, nullDevice) != 0 { device = "/dev/null" }

        let cases: [(String, String, mode_t)] = [(device, "character device", S_IFCHR), (fifo, "FIFO", S_IFIFO),
                                                 (socketPath, "socket", S_IFSOCK), (folder, "folder", S_IFDIR)]
        for (path, kind, type) in cases {
            assertRefusedBeforeWork(try finetune(["--output", path], cwd: dir), flag: "--output", path: path, saying: "is a \(kind)")
            assertRefusedBeforeWork(try finetune(["--output", dir.appendingPathComponent("m.h5").path, "--csv-log", path], cwd: dir),
                                    flag: "--csv-log", path: path, saying: "not a regular file")
            assertRefusedBeforeWork(try CLI.run(["import", checkpoint, "--to", path]), flag: "--to", path: path, saying: "not a regular file")
            assertRefusedBeforeWork(try CLI.run(["predict", checkpoint, "--data", data, "--output", path]),
                                    flag: "--output", path: path, saying: "not a regular file")
            XCTAssertEqual(fileType(path), type, "\(path) is still a \(kind)")
        }
        // A symlink to the device is followed, and refused for what it points at.
        let link = dir.appendingPathComponent("null.h5").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: device)
        assertRefusedBeforeWork(try CLI.run(["import", checkpoint, "--to", link]), flag: "--to", path: link, saying: "is a character device")
        XCTAssertEqual(fileType(device), S_IFCHR)
        XCTAssertEqual(temporaries(dir), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.h5").path))
    }

    /// A missing folder is reported before training (it used to be after the last epoch).
    func testAMissingFolderIsRefusedBeforeTraining() throws {
        let dir = try tempDir()
        for flag in ["--output", "--csv-log", "--plot", "--save-best"] {
            let args = flag == "--output" ? ["--output", "missing/x.h5"] : ["--output", "m.h5", flag, "missing/x"]
            let r = try finetune(args, cwd: dir)
            assertRefusedBeforeWork(r, flag: flag, path: flag == "--output" ? "missing/x.h5" : "missing/x",
                                    saying: "the folder missing does not exist")
            XCTAssertTrue(r.stderr.contains("hint: create it first"), r.stderr)
        }
        assertRefusedBeforeWork(try CLI.run(["import", checkpoint, "--to", "missing/x.h5"], cwd: dir),
                                flag: "--to", path: "missing/x.h5", saying: "does not exist")
        assertRefusedBeforeWork(try CLI.run(["predict", checkpoint, "--data", data, "--output", "missing/x.h5"], cwd: dir),
                                flag: "--output", path: "missing/x.h5", saying: "does not exist")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    /// A folder xfer cannot write to is reported before training.
    func testAnUnwritableFolderIsRefusedBeforeTraining() throws {
        let dir = try tempDir()
        let locked = dir.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: false)
        XCTAssertEqual(chmod(locked.path, 0o555), 0)
        var target = locked.appendingPathComponent("x.h5").path
        if access(locked.path, W_OK) == 0 {
            // Root writes anywhere the permissions forbid; a read-only or kernel file system still refuses.
            let probe = "/sys/xfer-probe-\(getpid())"
            let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 { close(fd); unlink(probe); throw XCTSkip("no folder this user cannot write to") }
            target = "/sys/xfer-test.h5"
        }
        let r = try finetune(["--output", target], cwd: dir)
        assertRefusedBeforeWork(r, flag: "--output", path: target, saying: "is not writable")
        assertRefusedBeforeWork(try CLI.run(["import", checkpoint, "--to", target]), flag: "--to", path: target, saying: "is not writable")
    }

    // MARK: Symlinks

    /// An existing symlink is written through: the file it names is replaced (keeping its
    /// permissions), the link stays. A dangling link gets its file created.
    func testASymlinkTargetIsWrittenThrough() throws {
        let dir = try tempDir()
        let real = dir.appendingPathComponent("real")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: false)
        let model = real.appendingPathComponent("model.h5").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: model))
        XCTAssertEqual(chmod(model, 0o640), 0)
        let link = dir.appendingPathComponent("out.h5").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "real/model.h5")
        let dangling = dir.appendingPathComponent("log.csv").path
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: "real/log.csv")

        let r = try finetune(["--output", link, "--csv-log", dangling], cwd: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), "real/model.h5")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dangling), "real/log.csv")
        XCTAssertEqual(fileType(model), S_IFREG)
        XCTAssertEqual(try CLI.run(["import", model]).status, 0, "the file behind the link is the new model")
        var st = stat()
        XCTAssertEqual(stat(model, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o640, "the replaced file keeps its permissions")
        XCTAssertEqual(try String(contentsOfFile: real.appendingPathComponent("log.csv").path, encoding: .utf8)
                        .split(separator: "\n").count, 2)
        XCTAssertEqual(temporaries(dir) + temporaries(real), [])
    }

    // MARK: Failed writes

    /// A write that fails (here past `ulimit -f`, as on a full disk) is one error line and a hint,
    /// exit 1, no libhdf5 text, no temporary file, and the old file untouched. It used to print
    /// libhdf5's multi-line message.
    func testAFailedWriteIsOneLineExit1AndLeavesNothing() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("out.h5").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: out))
        func limited(_ kb: Int, _ args: [String]) throws -> Run {
            // `exec` keeps the limit for xfer; xfer ignores SIGXFSZ, so the write fails with EFBIG.
            let command = "ulimit -f \(kb) && exec \"$0\" \"$@\""
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", command, CLI.binary.path] + args
            p.currentDirectoryURL = dir
            let o = Pipe(), e = Pipe()
            p.standardOutput = o; p.standardError = e
            try p.run()
            let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return Run(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
        }
        for args in [["import", fixtures.appendingPathComponent("k2_vgg_full.h5").path, "--to", out],
                     ["finetune", checkpoint, "--data", data, "--epochs", "1", "--head", "flatten,dense:8:relu", "--output", out]] {
            for kb in [1, 16, 64] {
                let r = try limited(kb, args)
                XCTAssertEqual(r.status, 1, "\(args[0]) with ulimit -f \(kb): \(r.stderr)")
                let lines = r.stderr.split(separator: "\n")
                XCTAssertEqual(lines.count, 2, r.stderr)
                XCTAssertEqual(lines.first.map(String.init), "xfer: error: \(out): cannot write (File too large)")
                XCTAssertTrue(lines.last?.hasPrefix("hint: ") ?? false, r.stderr)
                XCTAssertFalse(r.stderr.contains("HDF5") || r.stderr.contains("errno") || r.stderr.contains(".tmp"), r.stderr)
                XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "old")
                XCTAssertEqual(temporaries(dir), [])
            }
        }
    }

    // MARK: Signals and stale temporary files

    /// A running xfer whose stderr is collected as it comes.
    final class Running {
        let process = Process()
        private let lock = NSLock()
        private var err = Data()
        private var done = false
        private let finished = DispatchSemaphore(value: 0)

        init(_ args: [String], cwd: URL, pauseBeforeRename seconds: Int?) throws {
            process.executableURL = CLI.binary
            process.arguments = args
            process.currentDirectoryURL = cwd
            var env = ProcessInfo.processInfo.environment
            if let seconds { env["XFER_TEST_PAUSE_BEFORE_RENAME"] = String(seconds) }
            process.environment = env
            let e = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = e
            try process.run()
            let handle = e.fileHandleForReading
            Thread.detachNewThread { [self] in
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    lock.lock(); err.append(chunk); lock.unlock()
                }
                finished.signal()
            }
        }

        var stderr: String {
            lock.lock(); defer { lock.unlock() }
            return String(decoding: err, as: UTF8.self)
        }

        /// Waits until stderr contains `text` (false after `timeout` seconds or if the process ends first).
        func wait(for text: String, timeout: Double = 120) -> Bool {
            let end = Date().addingTimeInterval(timeout)
            while Date() < end {
                if stderr.contains(text) { return true }
                if !process.isRunning { return stderr.contains(text) }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }

        func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

        /// The exit status (after the stderr pipe is drained).
        func finish() -> Int32 {
            process.waitUntilExit()
            _ = finished.wait(timeout: .now() + 30)
            return process.terminationStatus
        }
    }

    let paused = "xfer: test: paused before rename "

    /// SIGTERM, SIGHUP, and Ctrl-C twice while the final model is being written: the temporary
    /// file is removed, the old file stays. Ctrl-C once: the write completes, exit 130.
    func testSignalsDuringTheFinalWriteLeaveTheOldOrTheNewFile() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("out.h5").path
        let args = ["finetune", checkpoint, "--data", data, "--epochs", "1", "--head", "flatten,dense:8:relu", "--output", out]
        for (signals, status) in [([SIGTERM], Int32(143)), ([SIGHUP], 129), ([SIGINT, SIGINT], 130)] {
            try Data("old".utf8).write(to: URL(fileURLWithPath: out))
            let run = try Running(args, cwd: dir, pauseBeforeRename: 60)
            XCTAssertTrue(run.wait(for: paused), run.stderr)
            XCTAssertEqual(temporaries(dir).count, 1, "the complete temporary file waits for its rename")
            for (i, s) in signals.enumerated() {
                if i > 0 { XCTAssertTrue(run.wait(for: "interrupted: finishing"), run.stderr) }
                run.send(s)
            }
            XCTAssertEqual(run.finish(), status, "signals \(signals): \(run.stderr)")
            XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "old", "signals \(signals)")
            XCTAssertEqual(temporaries(dir), [], "signals \(signals)")
        }
        // Ctrl-C once during training's final write: the weights are saved, then exit 130.
        try Data("old".utf8).write(to: URL(fileURLWithPath: out))
        let run = try Running(args, cwd: dir, pauseBeforeRename: 3)
        XCTAssertTrue(run.wait(for: paused), run.stderr)
        run.send(SIGINT)
        XCTAssertEqual(run.finish(), 130, run.stderr)
        XCTAssertEqual(try CLI.run(["import", out]).status, 0, "the new model is complete")
        XCTAssertEqual(temporaries(dir), [])
    }

    /// Outside training (import --to, predict --output) a single Ctrl-C or SIGTERM exits at once,
    /// and the file being written is not left behind.
    func testSignalsDuringImportAndPredictWritesLeaveNothing() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("out.h5").path
        for (args, sig, status) in [(["import", checkpoint, "--to", out], SIGINT, Int32(130)),
                                    (["predict", checkpoint, "--data", data, "--output", out], SIGTERM, 143)] {
            try Data("old".utf8).write(to: URL(fileURLWithPath: out))
            let run = try Running(args, cwd: dir, pauseBeforeRename: 60)
            XCTAssertTrue(run.wait(for: paused), run.stderr)
            run.send(sig)
            XCTAssertEqual(run.finish(), status, run.stderr)
            XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "old")
            XCTAssertEqual(temporaries(dir), [])
        }
    }

    /// SIGTERM while a --save-best copy is being written during training: exit 143, and neither
    /// that file nor any temporary is left.
    func testSigtermWhileSavingTheBestModelLeavesNothing() throws {
        let dir = try tempDir()
        let run = try Running(["finetune", checkpoint, "--data", data, "--epochs", "3", "--head", "flatten,dense:8:relu",
                               "--output", "out.h5", "--save-best", "best.h5"], cwd: dir, pauseBeforeRename: 60)
        XCTAssertTrue(run.wait(for: paused), run.stderr)
        XCTAssertTrue(run.stderr.contains(".best.h5."), run.stderr)
        run.send(SIGTERM)
        XCTAssertEqual(run.finish(), 143, run.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    /// SIGTERM during training (nothing being written) exits 143 at once and writes nothing.
    func testSigtermDuringTrainingWritesNothing() throws {
        let dir = try tempDir()
        let run = try Running(["finetune", checkpoint, "--data", data, "--epochs", "1000000", "--head", "flatten,dense:8:relu",
                               "--output", "out.h5", "--csv-log", "log.csv"], cwd: dir, pauseBeforeRename: nil)
        Thread.sleep(forTimeInterval: 2)
        XCTAssertTrue(run.process.isRunning, run.stderr)
        run.send(SIGTERM)
        XCTAssertEqual(run.finish(), 143, run.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    /// A temporary file left by a killed run (SIGKILL just before its rename) is removed by the
    /// next run that writes the same file; temporaries of running processes, of other files, and
    /// names that only look similar are left alone.
    func testAStaleTemporaryFromAKilledRunIsRemovedByTheNextRun() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("out.h5").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: out))
        let run = try Running(["import", checkpoint, "--to", out], cwd: dir, pauseBeforeRename: 60)
        XCTAssertTrue(run.wait(for: paused), run.stderr)
        run.send(SIGKILL)
        XCTAssertEqual(run.finish(), SIGKILL)
        let killed = ".out.h5.\(run.process.processIdentifier).tmp"
        XCTAssertEqual(temporaries(dir), [killed], "SIGKILL cannot clean up")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "old")

        // A pid that is surely not running: a child that has exited (and was reaped).
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let alive = getpid()
        let keep = [".out.h5.\(alive).tmp", ".other.h5.\(dead).tmp", ".out.h5.\(dead).tmp.bak", ".out.h5.x\(dead).tmp", "out.h5.\(dead).tmp"]
        for name in keep + [".out.h5.\(dead).tmp"] { try Data("junk".utf8).write(to: dir.appendingPathComponent(name)) }

        let r = try CLI.run(["import", checkpoint, "--to", out], cwd: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try CLI.run(["import", out]).status, 0)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        XCTAssertEqual(left, Set(keep + ["out.h5"]))
    }
}
