//! Reverie as a standalone application (JACK or ALSA).

fn main() {
    if !nice_plug::prelude::nice_export_standalone::<reverie::Reverie>() {
        std::process::exit(1);
    }
}
