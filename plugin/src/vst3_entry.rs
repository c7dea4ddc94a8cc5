//! The VST3 entry point: the plugin factory nice-plug's `nice_export_vst3!`
//! would generate, built here from nice-plug's public parts so that one
//! thing can be added: the host's `ProcessData::processMode` of every
//! `process()` call.
//!
//! nice-plug 0.4.2 reads the process mode only in `setupProcessing`, but
//! hosts also mark single calls: Ardour renders its exports with
//! `processMode = kOffline` on each call and calls `setupProcessing` again
//! only when the block size changes. So each instance's
//! `IAudioProcessor::process` goes through [`process_hook`], which notes
//! the mode for the duration of the call ([`host_process_mode`]) and then
//! calls nice-plug's own `process`; nothing else about the instance changes.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::OnceLock;

use nice_plug::wrapper::vst3::vst3::Steinberg::Vst::{
    IAudioProcessor, IAudioProcessorVtbl, ProcessData, ProcessModes_,
};
use nice_plug::wrapper::vst3::vst3::Steinberg::{
    int32, kInvalidArgument, kResultOk, tresult, FIDString, FUnknown, IPluginFactory, IPluginFactory2,
    IPluginFactory2Trait, IPluginFactory3, IPluginFactory3Trait, IPluginFactoryTrait, PClassInfo,
    PClassInfo2, PClassInfoW, PFactoryInfo, TUID,
};
use nice_plug::wrapper::vst3::vst3::{Class, ComWrapper};
use nice_plug::wrapper::vst3::{PluginInfo, Wrapper};

use crate::Reverie;

/// What a VST3 host says of the `process()` call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProcessMode {
    /// `kRealtime`: play on time.
    Realtime,
    /// `kPrefetch`: ahead of time, but still against a deadline.
    Prefetch,
    /// `kOffline`: a render; take the time it needs.
    Offline,
}

thread_local! {
    /// The mode of the VST3 `process()` call running on this thread.
    static CALL_MODE: Cell<Option<HostProcessMode>> = const { Cell::new(None) };
}

/// The process mode the VST3 host gave the `process()` call running on
/// this thread, if it is one (`None` under CLAP and the standalone).
pub fn host_process_mode() -> Option<HostProcessMode> {
    CALL_MODE.with(Cell::get)
}

type ProcessFn = unsafe extern "system" fn(*mut IAudioProcessor, *mut ProcessData) -> tresult;

/// nice-plug's `process`, and the copy of its vtable that calls the hook
/// instead. Every instance's interface shares nice-plug's one static
/// vtable, so one copy serves them all.
struct Hooked {
    original: ProcessFn,
    vtable: &'static IAudioProcessorVtbl,
}

static HOOKED: OnceLock<Hooked> = OnceLock::new();

unsafe extern "system" fn process_hook(this: *mut IAudioProcessor, data: *mut ProcessData) -> tresult {
    let Some(hooked) = HOOKED.get() else {
        return kInvalidArgument;
    };
    // SAFETY: the host passes a valid ProcessData or null (nice-plug checks
    // for null itself).
    let mode = unsafe { data.as_ref() }.map(|d| match d.processMode {
        m if m == ProcessModes_::kOffline as int32 => HostProcessMode::Offline,
        m if m == ProcessModes_::kPrefetch as int32 => HostProcessMode::Prefetch,
        _ => HostProcessMode::Realtime,
    });
    let previous = CALL_MODE.with(|c| c.replace(mode));
    // SAFETY: the same arguments, to the function the host would have called.
    let result = unsafe { (hooked.original)(this, data) };
    CALL_MODE.with(|c| c.set(previous));
    result
}

/// Points one instance's `IAudioProcessor` at the hooked vtable.
///
/// # Safety
/// `processor` must be the `IAudioProcessor` interface of a freshly made
/// nice-plug wrapper that no host has seen yet.
unsafe fn hook(processor: *mut IAudioProcessor) {
    // SAFETY: a COM interface pointer points at its vtable pointer.
    let table: &'static IAudioProcessorVtbl = unsafe { &*(*processor).vtbl };
    let hooked = HOOKED.get_or_init(|| {
        let mut copy = *table;
        copy.process = process_hook;
        Hooked {
            original: table.process,
            vtable: Box::leak(Box::new(copy)),
        }
    });
    // SAFETY: the interface header lives in the instance's own heap
    // allocation and is only ever read through raw pointers; nobody reads
    // it concurrently, since nobody else holds the instance yet.
    unsafe { (*processor).vtbl = hooked.vtable };
}

/// The factory: Reverie's one class.
pub struct Factory {
    info: PluginInfo,
}

impl Class for Factory {
    type Interfaces = (IPluginFactory, IPluginFactory2, IPluginFactory3);
}

impl Factory {
    fn class(&self, index: int32) -> Option<&PluginInfo> {
        (index == 0).then_some(&self.info)
    }
}

impl IPluginFactoryTrait for Factory {
    unsafe fn getFactoryInfo(&self, info: *mut PFactoryInfo) -> tresult {
        if info.is_null() {
            return kInvalidArgument;
        }
        unsafe { *info = self.info.create_factory_info() };
        kResultOk
    }

    unsafe fn countClasses(&self) -> int32 {
        1
    }

    unsafe fn getClassInfo(&self, index: int32, info: *mut PClassInfo) -> tresult {
        match self.class(index) {
            Some(class) if !info.is_null() => {
                unsafe { *info = class.create_class_info() };
                kResultOk
            }
            _ => kInvalidArgument,
        }
    }

    unsafe fn createInstance(&self, cid: FIDString, iid: FIDString, obj: *mut *mut c_void) -> tresult {
        if cid.is_null() || iid.is_null() || obj.is_null() {
            return kInvalidArgument;
        }
        // SAFETY: VST3 class ids are 16 bytes.
        if unsafe { &*(cid as *const [u8; 16]) } != self.info.cid {
            return kInvalidArgument;
        }
        let instance = ComWrapper::new(Wrapper::<Reverie>::new());
        let (Some(processor), Some(unknown)) = (
            instance.as_com_ref::<IAudioProcessor>(),
            instance.as_com_ref::<FUnknown>(),
        ) else {
            return kInvalidArgument;
        };
        unsafe {
            hook(processor.as_ptr());
            let unknown = unknown.as_ptr();
            ((*(*unknown).vtbl).queryInterface)(unknown, iid as *const TUID, obj)
        }
    }
}

impl IPluginFactory2Trait for Factory {
    unsafe fn getClassInfo2(&self, index: int32, info: *mut PClassInfo2) -> tresult {
        match self.class(index) {
            Some(class) if !info.is_null() => {
                unsafe { *info = class.create_class_info_2() };
                kResultOk
            }
            _ => kInvalidArgument,
        }
    }
}

impl IPluginFactory3Trait for Factory {
    unsafe fn getClassInfoUnicode(&self, index: int32, info: *mut PClassInfoW) -> tresult {
        match self.class(index) {
            Some(class) if !info.is_null() => {
                unsafe { *info = class.create_class_info_unicode() };
                kResultOk
            }
            _ => kInvalidArgument,
        }
    }

    unsafe fn setHostContext(&self, _context: *mut FUnknown) -> tresult {
        kResultOk
    }
}

/// The VST3 plugin factory entry point.
#[unsafe(no_mangle)]
pub extern "system" fn GetPluginFactory() -> *mut c_void {
    let factory = ComWrapper::new(Factory {
        info: PluginInfo::for_plugin::<Reverie>(),
    });
    factory
        .to_com_ptr::<IPluginFactory>()
        .map_or(std::ptr::null_mut(), |f| f.into_raw() as *mut c_void)
}

/// Called by Linux hosts when they load the module.
#[unsafe(no_mangle)]
#[cfg(all(target_family = "unix", not(target_os = "macos")))]
pub extern "C" fn ModuleEntry(_library: *mut c_void) -> bool {
    nice_plug::wrapper::setup_logger::<Reverie>();
    true
}

/// Called by Linux hosts before they unload the module.
#[unsafe(no_mangle)]
#[cfg(all(target_family = "unix", not(target_os = "macos")))]
pub extern "C" fn ModuleExit() -> bool {
    true
}

/// Called by macOS hosts when they load the bundle.
#[unsafe(no_mangle)]
#[cfg(target_os = "macos")]
pub extern "C" fn bundleEntry(_bundle: *mut c_void) -> bool {
    nice_plug::wrapper::setup_logger::<Reverie>();
    true
}

/// Called by macOS hosts before they unload the bundle.
#[unsafe(no_mangle)]
#[cfg(target_os = "macos")]
pub extern "C" fn bundleExit() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use nice_plug::wrapper::vst3::vst3::Steinberg::Vst::{
        BusDirection, IAudioProcessorTrait, ProcessSetup, SpeakerArrangement,
    };
    use nice_plug::wrapper::vst3::vst3::Steinberg::{kResultTrue, uint32, TBool};

    use super::*;

    /// What the processor's own `process` saw of the call's mode.
    static SEEN: Mutex<Vec<Option<HostProcessMode>>> = Mutex::new(Vec::new());

    /// A stand-in for nice-plug's wrapper: only `process` does anything.
    struct Recorder;

    impl Class for Recorder {
        type Interfaces = (IAudioProcessor,);
    }

    impl IAudioProcessorTrait for Recorder {
        unsafe fn setBusArrangements(
            &self,
            _: *mut SpeakerArrangement,
            _: int32,
            _: *mut SpeakerArrangement,
            _: int32,
        ) -> tresult {
            kResultTrue
        }
        unsafe fn getBusArrangement(&self, _: BusDirection, _: int32, _: *mut SpeakerArrangement) -> tresult {
            kResultTrue
        }
        unsafe fn canProcessSampleSize(&self, _: int32) -> tresult {
            kResultTrue
        }
        unsafe fn getLatencySamples(&self) -> uint32 {
            0
        }
        unsafe fn setupProcessing(&self, _: *mut ProcessSetup) -> tresult {
            kResultTrue
        }
        unsafe fn setProcessing(&self, _: TBool) -> tresult {
            kResultTrue
        }
        unsafe fn process(&self, _: *mut ProcessData) -> tresult {
            SEEN.lock().unwrap().push(host_process_mode());
            kResultOk
        }
        unsafe fn getTailSamples(&self) -> uint32 {
            0
        }
    }

    #[test]
    fn a_hooked_processor_sees_each_calls_mode_and_only_during_the_call() {
        let object = ComWrapper::new(Recorder);
        let processor = object.as_com_ref::<IAudioProcessor>().expect("interface");
        unsafe { hook(processor.as_ptr()) };
        let mut data: ProcessData = unsafe { std::mem::zeroed() };
        for mode in [
            ProcessModes_::kOffline,
            ProcessModes_::kRealtime,
            ProcessModes_::kPrefetch,
        ] {
            data.processMode = mode as int32;
            assert_eq!(unsafe { processor.process(&mut data) }, kResultOk);
            assert_eq!(host_process_mode(), None, "the mode is cleared after the call");
        }
        assert_eq!(unsafe { processor.process(std::ptr::null_mut()) }, kResultOk);
        assert_eq!(
            *SEEN.lock().unwrap(),
            [
                Some(HostProcessMode::Offline),
                Some(HostProcessMode::Realtime),
                Some(HostProcessMode::Prefetch),
                None
            ]
        );
    }
}
