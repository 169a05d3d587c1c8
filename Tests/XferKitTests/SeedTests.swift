// The seed streams derive the seeds xfer has always used, so that a seeded run repeats the
// bytes of earlier versions.

import XCTest
@testable import XferKit

final class SeedTests: XCTestCase {
    func testStreamsDeriveTheEarlierSeeds() {
        for seed: UInt64 in [0, 1, 42, 0xFFFF_FFFF_FFFF_FFFF] {
            XCTAssertEqual(SeedStream.headInit.seed(from: seed), seed)
            XCTAssertEqual(SeedStream.split.seed(from: seed), seed ^ 0x5EED_5B11_7000_0001)
            for epoch in [0, 1, 7] {
                XCTAssertEqual(SeedStream.shuffle(epoch: epoch).seed(from: seed), seed &+ UInt64(epoch) &* 0x9E37_79B9)
                XCTAssertEqual(SeedStream.augment(startEpoch: epoch).seed(from: seed), (seed ^ 0xA06_3E47) &+ UInt64(epoch))
            }
            // Dropout layers took successive draws of one generator seeded with the run's seed.
            var draws = XferKit.SeededRandom(seed: seed)
            for index in 0..<4 {
                let draw = draws.next()
                XCTAssertEqual(SeedStream.dropout(index: index).seed(from: seed), draw)
            }
        }
    }
}
