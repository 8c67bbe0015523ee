//! Fuzzes the environment loader and template renderer with whole projects
//! (an environment file and templates in one input; see
//! `phoenix_config::hostile`). A panic, a hang (libFuzzer's -timeout) or a
//! broken confinement rule is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phoenix_config::hostile::load_case(data) {
        panic!("{}", v.0);
    }
});
