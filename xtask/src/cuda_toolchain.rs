//! `cargo xtask cuda-toolchain`: installs a CUDA 13.0 build toolchain from
//! NVIDIA's PyPI wheels, so `cargo build --features cuda` works on a machine
//! with no CUDA installed (and no GPU).
//!
//! candle's `cuda` feature needs, at build time: `nvcc` (candle-kernels
//! compiles its kernels to PTX and a static `libmoe.a`), the CUDA headers,
//! and for the link the shared libraries cudarc names with
//! `dynamic-linking` (cuda, nvrtc, curand, cublas, cublasLt) plus `cudart`
//! (from candle-kernels). The wheels install everything under
//! `nvidia/cu13/{bin,include,lib,nvvm}`; this command assembles a CUDA root
//! next to them with what the linker still needs:
//!
//! ```text
//! DIR/pip/            pip install --target (the wheels, untouched)
//! DIR/root/           CUDA_ROOT = CUDA_PATH = CUDA_HOME
//!   bin include nvvm  -> ../pip/nvidia/cu13/...
//!   lib/              links to every library, plus unversioned names
//!                     (libcublas.so -> libcublas.so.13) for `-lcublas`
//!   lib/stubs/        libcuda.so: a link-time stub of the driver API
//!   lib64 -> lib
//! DIR/env.sh          the environment to source before building
//! ```
//!
//! The driver library (`libcuda.so.1`) comes with the NVIDIA driver, not
//! with the toolkit, and no wheel has it; the toolkit normally ships a stub
//! for linking. The stub built here exports every `cu*` function that
//! `cuda.h` declares, each returning `CUDA_ERROR_STUB_LIBRARY` (34), with
//! the soname `libcuda.so.1`, so binaries link against it and load the real
//! driver on a GPU machine.
//!
//! By default env.sh also makes the build load the CUDA libraries at run
//! time (cudarc's `dynamic-loading` code, turned on with a `--cfg` for
//! target crates only), so a cuda binary starts where CUDA is missing and
//! falls back to the CPU; `--linked` leaves that out. docs/cuda.md explains.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The CUDA release the pins below belong to. 13.0 is the oldest CUDA 13:
/// candle's kernels are shipped as PTX and JIT-compiled by the driver, and
/// a driver only accepts PTX from its own CUDA release or older, so 13.0
/// PTX loads on every CUDA 13 driver.
const CUDA_RELEASE: &str = "13.0";

/// The wheels (PyPI name, version, what candle needs from it), all from
/// CUDA 13.0 (update 2).
const WHEELS: &[(&str, &str, &str)] = &[
    ("nvidia-cuda-nvcc", "13.0.88", "nvcc, ptxas, fatbinary, nvlink"),
    ("nvidia-nvvm", "13.0.88", "cicc and libdevice, nvcc's back end"),
    ("nvidia-cuda-crt", "13.0.88", "crt/ headers nvcc includes"),
    (
        "nvidia-cuda-runtime",
        "13.0.96",
        "cuda_runtime.h, cuda.h, libcudart",
    ),
    ("nvidia-cuda-cccl", "13.0.85", "libcu++/CUB headers, include/cccl"),
    ("nvidia-cuda-nvrtc", "13.0.88", "libnvrtc"),
    ("nvidia-cublas", "13.0.2.14", "libcublas, libcublasLt"),
    ("nvidia-curand", "10.4.0.35", "libcurand"),
];

/// Where the wheels put the toolkit, relative to pip's --target.
const WHEEL_ROOT: &str = "nvidia/cu13";

/// `CUDA_ERROR_STUB_LIBRARY` in cuda.h.
const CUDA_ERROR_STUB_LIBRARY: i32 = 34;

/// Arguments of `cargo xtask cuda-toolchain`.
#[derive(clap::Args)]
pub struct CudaToolchainArgs {
    /// Where to install (default: $XDG_CACHE_HOME/reverie/cuda, else
    /// ~/.cache/reverie/cuda). About 1.2 GB.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// GPU compute capability to compile the kernels for (90 = H100/H200).
    /// candle-kernels otherwise asks nvidia-smi, which needs a GPU.
    #[arg(long, default_value = "90")]
    pub compute_cap: String,
    /// The Python interpreter whose pip installs the wheels.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Reinstall the wheels even if the pinned versions are already there.
    #[arg(long)]
    pub force: bool,
    /// Write an env.sh for a build that links the CUDA libraries (candle's
    /// default) instead of loading them at run time; such a binary does not
    /// start where they are missing.
    #[arg(long)]
    pub linked: bool,
}

/// Runs the command.
pub fn run(args: &CudaToolchainArgs) -> anyhow::Result<()> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("cuda-toolchain supports x86_64 Linux only (the wheels it installs are built for it)");
    }
    if args.compute_cap.is_empty() || !args.compute_cap.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!(
            "--compute-cap must look like 90, 89 or 90a, not {:?}",
            args.compute_cap
        );
    }
    let dir = match &args.dir {
        Some(d) => absolute(d)?,
        None => default_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("CUDA {CUDA_RELEASE} toolchain in {}", dir.display());

    step(1, "Python and pip");
    check_pip(&args.python)?;

    step(2, "wheels from PyPI");
    install_wheels(&dir, &args.python, args.force)?;

    step(3, "checking nvcc");
    let wheel_root = dir.join("pip").join(WHEEL_ROOT);
    let version = nvcc_version(&wheel_root.join("bin/nvcc"))?;
    println!("  {version}");
    if !version.contains(&format!("release {CUDA_RELEASE},")) {
        bail!("expected nvcc from CUDA {CUDA_RELEASE}, got {version:?}; run again with --force");
    }

    step(4, "assembling the CUDA root");
    let root = dir.join("root");
    assemble_root(&wheel_root, &root)?;

    step(5, "link-time stub of the driver library (libcuda.so)");
    let n = build_driver_stub(&root)?;
    println!("  {n} driver API functions, each returning CUDA_ERROR_STUB_LIBRARY");

    step(
        6,
        &format!("smoke test: compiling a kernel for sm_{}", args.compute_cap),
    );
    smoke_test(&dir, &root, &args.compute_cap)?;

    step(7, "writing env.sh");
    let env = env_script(&dir, &root, &args.compute_cap, args.linked);
    let env_path = dir.join("env.sh");
    std::fs::write(&env_path, &env).with_context(|| format!("writing {}", env_path.display()))?;
    println!("  {}", env_path.display());

    println!("\nThe toolchain is ready. Before building with `--features cuda`:\n");
    println!("  . {}\n", env_path.display());
    println!("which sets:\n");
    for line in env
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        println!("  {line}");
    }
    println!(
        "\nThen, from the repository root (scripts/cuda-env.sh sources env.sh and sets\n\
         CARGO_TARGET_DIR=target/cuda):\n\n  . scripts/cuda-env.sh\n  \
         nice -n 19 cargo build -p xtask --features cuda --release\n\n\
         See docs/cuda.md for running the result here (CPU fallback) and on a GPU machine."
    );
    Ok(())
}

fn step(n: usize, what: &str) {
    println!("[{n}/7] {what}");
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --dir")?).join(".cache")
        }
    };
    Ok(cache.join("reverie").join("cuda"))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn check_pip(python: &str) -> anyhow::Result<()> {
    let out = Command::new(python).args(["-m", "pip", "--version"]).output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{python}` was not found. Install Python 3 with pip (Debian: `apt-get install python3 python3-pip`) \
             or pass --python /path/to/python3"
        ),
        Err(e) => Err(e).with_context(|| format!("running `{python} -m pip --version`")),
        Ok(o) if !o.status.success() => bail!(
            "pip is not available for `{python}` ({}). Install it (Debian: `apt-get install python3-pip`, \
             or `{python} -m ensurepip`) or pass --python",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(o) => {
            let version = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if !version.starts_with("pip ") {
                bail!("`{python} -m pip --version` printed {version:?}, not a pip version: pass --python");
            }
            println!("  {version}");
            Ok(())
        }
    }
}

/// pip's record that a wheel is installed in a --target folder.
fn dist_info(pip_dir: &Path, name: &str, version: &str) -> PathBuf {
    pip_dir.join(format!("{}-{version}.dist-info", name.replace('-', "_")))
}

fn install_wheels(dir: &Path, python: &str, force: bool) -> anyhow::Result<()> {
    let pip_dir = dir.join("pip");
    let missing: Vec<_> = WHEELS
        .iter()
        .filter(|(name, version, _)| !dist_info(&pip_dir, name, version).is_dir())
        .collect();
    if missing.is_empty() && !force {
        println!("  already installed: {}", pins().join(" "));
        return Ok(());
    }
    for (name, version, what) in WHEELS {
        println!("  {name}=={version}  ({what})");
    }
    println!("  downloading about 675 MB (cuBLAS is most of it), 1.2 GB installed");
    // Install into a fresh folder and swap it in only when pip succeeded, so
    // an interrupted download never leaves a half-installed toolchain behind.
    let partial = dir.join("pip.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--only-binary=:all:",
            "--no-cache-dir",
        ])
        .args([
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--retries",
            "2",
            "--timeout",
            "30",
        ])
        .arg("--target")
        .arg(&partial)
        .args(pins())
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .status()
        .with_context(|| format!("running `{python} -m pip install`"))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        bail!(
            "pip could not install the CUDA wheels ({status}). If pip printed \"Retrying ... connection\" \
             warnings before \"No matching distribution found\", this machine cannot reach PyPI: it needs \
             https://pypi.org and https://files.pythonhosted.org (or a mirror in PIP_INDEX_URL; a proxy in \
             HTTPS_PROXY). Without those warnings, your pip may be too old for manylinux_2_27 wheels \
             (`{python} -m pip install --upgrade pip`)"
        );
    }
    if let Some((name, version, _)) = WHEELS
        .iter()
        .find(|(name, version, _)| !dist_info(&partial, name, version).is_dir())
    {
        bail!(
            "pip reported success but {name}=={version} is not in {}: run again with --force",
            partial.display()
        );
    }
    if pip_dir.exists() {
        std::fs::remove_dir_all(&pip_dir)
            .with_context(|| format!("removing the old {}", pip_dir.display()))?;
    }
    std::fs::rename(&partial, &pip_dir)?;
    Ok(())
}

fn pins() -> Vec<String> {
    WHEELS.iter().map(|(n, v, _)| format!("{n}=={v}")).collect()
}

fn nvcc_version(nvcc: &Path) -> anyhow::Result<String> {
    let out = Command::new(nvcc)
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", nvcc.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            nvcc.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find(|l| l.contains("release"))
        .unwrap_or(text.trim())
        .to_string())
}

/// Makes `link` a symbolic link to `target`, replacing whatever is there.
fn symlink(target: &Path, link: &Path) -> anyhow::Result<()> {
    if let Ok(existing) = std::fs::read_link(link) {
        if existing == target {
            return Ok(());
        }
    }
    if link.symlink_metadata().is_ok() {
        if link.is_dir() && !link.is_symlink() {
            std::fs::remove_dir_all(link)?;
        } else {
            std::fs::remove_file(link)?;
        }
    }
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(target, link);
    #[cfg(not(unix))]
    let made: std::io::Result<()> = Err(std::io::ErrorKind::Unsupported.into());
    made.with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

fn assemble_root(wheel_root: &Path, root: &Path) -> anyhow::Result<()> {
    // Relative links, so the whole DIR can be moved or copied.
    let up = |depth: usize| PathBuf::from("../".repeat(depth)).join("pip").join(WHEEL_ROOT);
    let lib = root.join("lib");
    std::fs::create_dir_all(lib.join("stubs"))?;
    for sub in ["bin", "include", "nvvm"] {
        if !wheel_root.join(sub).is_dir() {
            bail!(
                "{} is missing: the wheels are incomplete, run again with --force",
                wheel_root.join(sub).display()
            );
        }
        symlink(&up(1).join(sub), &root.join(sub))?;
    }
    symlink(Path::new("lib"), &root.join("lib64"))?;
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(wheel_root.join("lib"))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if !entry.file_type()?.is_file() {
            continue; // cmake/
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        symlink(&up(2).join("lib").join(&name), &lib.join(&name))?;
        count += 1;
        // libcublas.so.13 -> also libcublas.so, which is what `-lcublas` looks for.
        if let Some(i) = name.find(".so.") {
            symlink(Path::new(&name), &lib.join(&name[..i + 3]))?;
        }
    }
    println!(
        "  {} ({count} libraries, unversioned .so links, lib64 -> lib)",
        root.display()
    );
    Ok(())
}

/// The C compiler for the stub: $CC or cc.
fn c_compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".to_string())
}

/// Every function `cuda.h` declares as returning CUresult, after the
/// preprocessor has applied its `#define cuFoo cuFoo_v2` renames, with and
/// without the legacy names.
fn driver_functions(include: &Path) -> anyhow::Result<Vec<String>> {
    let cc = c_compiler();
    let mut names = std::collections::BTreeSet::new();
    for defines in [&[][..], &["-D__CUDA_API_VERSION_INTERNAL"][..]] {
        let mut child = Command::new(&cc)
            .args(["-E", "-x", "c", "-"])
            .args(defines)
            .arg("-I")
            .arg(include)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running the C compiler `{cc}` (install gcc, or set CC)"))?;
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"#include <cuda.h>\n")?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`{cc} -E` on cuda.h failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        // Tokens: identifiers, or single punctuation characters.
        let mut tokens = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_ascii_alphabetic() || c == '_' {
                let mut end = i + 1;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        end = j + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(&text[i..end]);
            } else if !c.is_whitespace() {
                tokens.push(&text[i..i + c.len_utf8()]);
            }
        }
        for w in tokens.windows(3) {
            if w[0] == "CUresult" && w[1].starts_with("cu") && w[2] == "(" {
                names.insert(w[1].to_string());
            }
        }
    }
    if names.len() < 100 || !names.contains("cuInit") {
        bail!(
            "found only {} driver functions in cuda.h: is the header complete?",
            names.len()
        );
    }
    Ok(names.into_iter().collect())
}

fn build_driver_stub(root: &Path) -> anyhow::Result<usize> {
    let names = driver_functions(&root.join("include"))?;
    let stubs = root.join("lib/stubs");
    let mut source = String::from(
        "/* Generated by `cargo xtask cuda-toolchain`: a link-time stand-in for the\n \
         * NVIDIA driver library. Never put it on LD_LIBRARY_PATH on a GPU machine. */\n",
    );
    for name in &names {
        source.push_str(&format!(
            "int {name}(void) {{ return {CUDA_ERROR_STUB_LIBRARY}; }}\n"
        ));
    }
    let c_file = stubs.join("libcuda_stub.c");
    let so = stubs.join("libcuda.so");
    // The real driver's name, so the loader finds the stub where we ask it to
    // (only ever for CPU-fallback runs on machines without a driver).
    symlink(Path::new("libcuda.so"), &stubs.join("libcuda.so.1"))?;
    if std::fs::read_to_string(&c_file).ok().as_deref() == Some(source.as_str()) && so.is_file() {
        println!("  {} is up to date", so.display());
        return Ok(names.len());
    }
    std::fs::write(&c_file, &source)?;
    let cc = c_compiler();
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O0", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&so)
        .arg(&c_file)
        .output()
        .with_context(|| format!("running the C compiler `{cc}`"))?;
    if !out.status.success() {
        bail!(
            "building {} failed:\n{}",
            so.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("  {}", so.display());
    Ok(names.len())
}

fn smoke_test(dir: &Path, root: &Path, cap: &str) -> anyhow::Result<()> {
    let work = dir.join("smoke");
    std::fs::create_dir_all(&work)?;
    let cu = work.join("smoke.cu");
    std::fs::write(
        &cu,
        "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n#include <stdint.h>\n\
         extern \"C\" __global__ void axpy(float a, const __half *x, float *y, uint32_t n) {\n\
         \x20 uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;\n\
         \x20 if (i < n) y[i] += a * __half2float(x[i]);\n}\n",
    )?;
    let nvcc = root.join("bin/nvcc");
    // The two ways candle-kernels calls nvcc: PTX for most kernels, and
    // objects (host code through gcc) for its static library.
    let runs: [(&str, Vec<String>, &str); 2] = [
        (
            "PTX",
            vec![format!("-arch=compute_{cap}"), "--ptx".into()],
            "smoke.ptx",
        ),
        (
            "object",
            vec![
                format!("-gencode=arch=compute_{cap},code=sm_{cap}"),
                "-c".into(),
                "-Xcompiler".into(),
                "-fPIC".into(),
            ],
            "smoke.o",
        ),
    ];
    for (what, flags, out_name) in runs {
        let out = Command::new(&nvcc)
            .args(&flags)
            .args(["-std=c++17", "-O3", "-o"])
            .arg(work.join(out_name))
            .arg(&cu)
            .env("PATH", path_with(&root.join("bin")))
            .output()
            .with_context(|| format!("running {}", nvcc.display()))?;
        if !out.status.success() {
            bail!(
                "nvcc could not compile a test kernel to {what}:\n{}{}\nIf it complains about the host \
                 compiler, point NVCC_CCBIN at a supported gcc (CUDA 13.0 supports gcc 6 to 14).",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        println!("  {what}: ok");
    }
    Ok(())
}

fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

fn env_script(dir: &Path, root: &Path, cap: &str, linked: bool) -> String {
    let (dir, root) = (dir.display(), root.display());
    let mut env = format!(
        r#"# Generated by `cargo xtask cuda-toolchain` (CUDA {CUDA_RELEASE} from PyPI wheels).
# Source it before `cargo build --features cuda`:  . {dir}/env.sh
export CUDA_ROOT="{root}"
export CUDA_PATH="$CUDA_ROOT"
export CUDA_HOME="$CUDA_ROOT"
case ":$PATH:" in *":$CUDA_ROOT/bin:"*) ;; *) export PATH="$CUDA_ROOT/bin:$PATH" ;; esac
# The GPU to compile candle's kernels for (90 = H100/H200); without it the
# build asks nvidia-smi, which only exists where there is a GPU.
export CUDA_COMPUTE_CAP={cap}
# candle-kernels links -lcudart without saying where it is.
export LIBRARY_PATH="$CUDA_ROOT/lib${{LIBRARY_PATH:+:$LIBRARY_PATH}}"
"#
    );
    if !linked {
        env.push_str(
            r#"# Load the CUDA libraries at run time (dlopen) instead of linking them, so a
# cuda build starts on any machine and falls back to the CPU where CUDA is
# missing: candle-core asks cudarc for `dynamic-linking`; this turns on
# cudarc's `dynamic-loading` code instead. The cfg must not reach build
# scripts (cudarc's would refuse both), hence the explicit target: binaries
# land in $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release. RUSTFLAGS, if
# set, would override this. (`cargo xtask cuda-toolchain --linked` leaves it out.)
export CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='--cfg feature="dynamic-loading"'
# At run time on a GPU machine the driver's libcuda.so.1 must be on the loader
# path (it is wherever the driver is installed), and so must cuBLAS
# (libcublas.so.13, libcublasLt.so.13) and cuRAND (libcurand.so.10), e.g.:
#   export LD_LIBRARY_PATH="$CUDA_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"#,
        );
    } else {
        env.push_str(
            r#"# Linked build: the binary needs libcuda.so.1, libcublas.so.13 and
# libcurand.so.10 to start at all. On a GPU machine:
#   export LD_LIBRARY_PATH="$CUDA_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# On a machine without a GPU driver, add the driver stub so it starts and
# falls back to the CPU (never where a real driver is installed):
#   export LD_LIBRARY_PATH="$CUDA_ROOT/lib:$CUDA_ROOT/lib/stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"#,
        );
    }
    env
}
