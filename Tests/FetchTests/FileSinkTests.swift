import CourierCore
import CourierTestSupport
import Foundation
@preconcurrency import Glibc
import NIOCore
import Testing

@testable import CourierFetch

/// The `.partial` file a download streams into: its descriptor is closed by `finish` (before
/// `PartialDownload.commit` renames the file), by `abandon`, and by the sink going away, and
/// nothing is written through a closed one.
@Suite struct FileSinkTests {
    func chunk(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test func finishWritesFsyncsAndClosesBeforeTheRename() throws {
        let ws = Workspace("sink-finish")
        let sink = try FileSink(path: ws.path("a.partial"), offset: 0)
        #expect(openDescriptors(under: ws.root) == [ws.path("a.partial")])
        try sink.write(chunk("hello "))
        try sink.write(chunk("world\n"))
        try sink.finish()
        #expect(openDescriptors(under: ws.root).isEmpty)
        #expect(ws.read("a.partial") == Array("hello world\n".utf8))
        expectCourierError(.io, "\(ws.path("a.partial")): already closed") {
            try sink.write(chunk("more"))
            try sink.flush()
        }
    }

    @Test func aResumeCutsToTheOffsetAndAppends() throws {
        let ws = Workspace("sink-resume")
        FileManager.default.createFile(atPath: ws.path("b.partial"), contents: Data("0123456789".utf8))
        let sink = try FileSink(path: ws.path("b.partial"), offset: 4)
        try sink.write(chunk("abc"))
        try sink.finish()
        #expect(ws.read("b.partial") == Array("0123abc".utf8))
    }

    @Test func abandonAndDeinitCloseToo() throws {
        let ws = Workspace("sink-abandon")
        let kept = try FileSink(path: ws.path("c.partial"), offset: 0)
        try kept.write(chunk("part"))
        kept.abandon()
        #expect(openDescriptors(under: ws.root).isEmpty)
        #expect(ws.read("c.partial") == Array("part".utf8))  // flushed, for a later resume
        do {
            let dropped = try FileSink(path: ws.path("d.partial"), offset: 0)
            withExtendedLifetime(dropped) { #expect(openDescriptors(under: ws.root) == [ws.path("d.partial")]) }
        }
        #expect(openDescriptors(under: ws.root).isEmpty)
    }

    @Test func aFileThatCannotBeCutIsClosedAgain() throws {
        // A FIFO opens for writing (with a reader) but cannot be truncated: the sink's init fails
        // after the open, and the descriptor it opened must not outlive it.
        let ws = Workspace("sink-fail")
        let fifo = ws.path("e.partial")
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = OwnedFD(adopting: open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
        #expect(reader.raw >= 0)
        expectCourierError(.io, fifo) { _ = try FileSink(path: fifo, offset: 0) }
        #expect(openDescriptors(under: ws.root) == [fifo])  // the test's reader only
    }
}
