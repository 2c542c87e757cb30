import CourierTUF
import Testing

@Suite struct CourierTUFVersionTests {
    @Test func specVersionIsOneDotZero() { #expect(CourierTUF.specVersion.hasPrefix("1.0.")) }
}
