// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "xfer",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "XferKit", targets: ["XferKit"]),
        .executable(name: "xfer", targets: ["xfer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        // ONNX export: the runtime library only (Sources/XferKit/ONNX/onnx.pb.swift is generated once).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // Documentation only: `swift package generate-documentation --target XferKit`.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // libhdf5 (Debian: libhdf5-dev). Only Sources/XferKit/HDF5 imports it.
        .systemLibrary(
            name: "CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // oneDNN (Debian: libdnnl-dev): its SGEMM, its Winograd and direct convolutions, behind the few C
        // functions of include/xfer_onednn.h. Only Engine/GEMM.swift, Engine/Winograd.swift and
        // Engine/DirectConvolution.swift import it.
        .target(
            name: "COneDNN",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]
        ),
        // TurboJPEG (Debian: libturbojpeg0-dev). Only Sources/XferKit/Data/JPEGDecoder.swift imports it.
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]
        ),
        // libpng (Debian: libpng-dev). Only Sources/XferKit/Data/PNGDecoder.swift imports it.
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        // The guards for files that make libhdf5 itself fault or hang (see its header): the
        // HDF5 probe in a child process, the fault handler, Ctrl-C.
        .target(name: "CXferGuard", dependencies: ["CHDF5"]),
        .target(
            name: "XferKit",
            dependencies: [
                "CHDF5",
                "CXferGuard",
                "COneDNN",
                "CTurboJPEG",
                "CPNG",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "xfer",
            dependencies: [
                "XferKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Inference benchmark: VGG16 conv base with synthetic weights (BENCHMARKS.md).
        .executableTarget(
            name: "xfer-bench",
            dependencies: ["XferKit"],
            path: "Benchmarks/xfer-bench"
        ),
        // Training benchmark: per-step timing of a fine-tuning step (BENCHMARKS.md, "Training").
        .executableTarget(
            name: "xfer-train-bench",
            dependencies: ["XferKit"],
            path: "Benchmarks/train/xfer-train-bench"
        ),
        .testTarget(name: "XferKitTests", dependencies: ["XferKit"]),
        .testTarget(name: "xferTests", dependencies: ["xfer", "XferKit"]),
    ]
)
