import XCTest
@testable import XferKit
final class SmokeTests: XCTestCase { func testNothing() {} }
