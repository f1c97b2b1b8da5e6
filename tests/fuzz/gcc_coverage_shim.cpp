// GCC's -fsanitize-coverage=trace-cmp also reports float and double comparisons, through hooks
// that libFuzzer's runtime does not define (clang emits none). They carry no feedback libFuzzer
// could use, so they do nothing. Linked into the GCC-built targets only.
extern "C" {
void __sanitizer_cov_trace_cmpf(float, float) {}
void __sanitizer_cov_trace_cmpd(double, double) {}
}
