//! The instrument families of the rendered dataset (its classes) and the
//! solo pianos a WaveNet learns from: General MIDI programs and the keys
//! each sounds natural in.

/// One instrument family: a class of the rendered dataset.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The class (folder) name.
    pub name: &'static str,
    /// General MIDI programs with the MIDI key range each sounds natural
    /// in: `(program, lowest key, highest key)`. For drums, the programs are
    /// drum kits in bank 128 and the range is unused.
    pub voices: &'static [(u8, u8, u8)],
    /// Whether this family plays on the percussion channel.
    pub percussion: bool,
    /// Relative weights of melody, chords and rhythm phrases.
    pub(crate) style_weights: [u32; 3],
    /// Whether notes are usually held (bowed, blown, organ) rather than
    /// struck and left to decay.
    pub(crate) sustained: bool,
}

/// Acoustic grand pianos only: the homogeneous solo piano the WaveNet
/// learns from (seed 004: WaveNets learn one instrument where a mixture
/// fails). The "piano" family of [`FAMILIES`] also has electric pianos,
/// harpsichord and clavinet.
pub const SOLO_PIANO: Family = Family {
    name: "piano",
    voices: &[(0, 33, 96), (1, 33, 96)],
    percussion: false,
    style_weights: [3, 4, 2],
    sustained: false,
};

/// One acoustic grand playing single-line melodies in the octave and a
/// bit above middle C (C4 to D5): a small vocabulary of notes, each heard
/// over and over, which a WaveNet learns to play in the few hours a CPU
/// can give it (the wide [`SOLO_PIANO`] needs days of a GPU).
pub const PIANO_MELODIES: Family = Family {
    name: "piano",
    voices: &[(0, 60, 74)],
    percussion: false,
    style_weights: [1, 0, 0],
    sustained: false,
};

/// The rendered families, in class order.
pub const FAMILIES: [Family; 10] = [
    Family {
        name: "piano",
        voices: &[
            (0, 33, 96),
            (1, 33, 96),
            (2, 33, 96),
            (3, 40, 90),
            (4, 36, 90),
            (5, 36, 90),
            (6, 41, 89),
            (7, 40, 84),
        ],
        percussion: false,
        style_weights: [3, 4, 2],
        sustained: false,
    },
    Family {
        name: "mallets",
        voices: &[
            (8, 60, 96),
            (9, 72, 100),
            (10, 60, 96),
            (11, 53, 89),
            (12, 48, 84),
            (13, 65, 96),
            (14, 60, 77),
            (15, 55, 84),
        ],
        percussion: false,
        style_weights: [4, 2, 3],
        sustained: false,
    },
    Family {
        name: "organ",
        voices: &[
            (16, 36, 84),
            (17, 36, 84),
            (18, 36, 84),
            (19, 36, 84),
            (20, 48, 84),
            (21, 48, 84),
            (22, 60, 84),
            (23, 48, 84),
        ],
        percussion: false,
        style_weights: [2, 5, 1],
        sustained: true,
    },
    Family {
        name: "guitar",
        voices: &[
            (24, 40, 79),
            (25, 40, 79),
            (26, 40, 79),
            (27, 40, 79),
            (28, 40, 72),
            (29, 40, 79),
            (30, 40, 79),
            (31, 52, 84),
        ],
        percussion: false,
        style_weights: [3, 4, 3],
        sustained: false,
    },
    Family {
        name: "bass",
        voices: &[
            (32, 28, 55),
            (33, 28, 55),
            (34, 28, 55),
            (35, 28, 55),
            (36, 28, 55),
            (37, 28, 55),
            (38, 28, 60),
            (39, 28, 60),
        ],
        percussion: false,
        style_weights: [6, 0, 4],
        sustained: false,
    },
    Family {
        name: "strings",
        voices: &[
            (40, 55, 96),
            (41, 48, 84),
            (42, 36, 72),
            (43, 28, 55),
            (44, 40, 84),
            (45, 36, 84),
            (46, 36, 91),
            (48, 36, 96),
            (49, 36, 96),
            (50, 36, 96),
            (51, 36, 96),
        ],
        percussion: false,
        style_weights: [4, 4, 1],
        sustained: true,
    },
    Family {
        name: "brass",
        voices: &[
            (56, 55, 82),
            (57, 40, 72),
            (58, 28, 55),
            (59, 55, 82),
            (60, 41, 77),
            (61, 40, 84),
            (62, 36, 84),
            (63, 36, 84),
        ],
        percussion: false,
        style_weights: [4, 3, 2],
        sustained: true,
    },
    Family {
        name: "winds",
        voices: &[
            (64, 56, 87),
            (65, 49, 81),
            (66, 44, 76),
            (67, 36, 69),
            (68, 58, 91),
            (69, 52, 81),
            (70, 34, 72),
            (71, 50, 91),
            (72, 74, 102),
            (73, 60, 96),
            (74, 60, 96),
            (75, 60, 96),
            (76, 60, 96),
            (77, 60, 84),
            (78, 60, 96),
            (79, 60, 96),
        ],
        percussion: false,
        style_weights: [7, 1, 2],
        sustained: true,
    },
    Family {
        name: "synth",
        voices: &[
            (80, 48, 96),
            (81, 36, 96),
            (82, 48, 96),
            (83, 48, 96),
            (84, 40, 84),
            (85, 48, 96),
            (86, 48, 84),
            (87, 28, 60),
            (88, 36, 84),
            (89, 36, 84),
            (90, 36, 84),
            (91, 36, 84),
            (92, 36, 84),
            (93, 36, 84),
            (94, 36, 84),
            (95, 36, 84),
        ],
        percussion: false,
        style_weights: [3, 3, 3],
        sustained: true,
    },
    Family {
        name: "drums",
        voices: &[
            (0, 0, 0),
            (8, 0, 0),
            (16, 0, 0),
            (24, 0, 0),
            (25, 0, 0),
            (32, 0, 0),
            (40, 0, 0),
            (48, 0, 0),
        ],
        percussion: true,
        style_weights: [0, 0, 1],
        sustained: false,
    },
];
