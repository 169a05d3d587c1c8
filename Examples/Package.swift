// swift-tools-version:5.9
// A package of a user's, depending on XferKit by path: the README's example (FineTune) and
// predicting one photo (PredictPhoto). `scripts/examples.sh` builds and runs both from the
// repository's root; Tests/XferKitTests/ReadmeExampleTests.swift checks that the README and the
// DocC tutorial show FineTune's code as it is here.

import Foundation
import PackageDescription

// A path dependency is named after its folder (the clone's name, whatever it is).
let xfer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "xfer-examples",
    platforms: [.macOS(.v13)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(name: "FineTune", dependencies: [.product(name: "XferKit", package: xfer)]),
        .executableTarget(name: "PredictPhoto", dependencies: [.product(name: "XferKit", package: xfer)]),
    ]
)
