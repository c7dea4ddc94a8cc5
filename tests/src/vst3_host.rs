//! A small VST3 host for end-to-end tests of the built plugin, on the
//! `vst3` crate's bindings.
//!
//! [`reverie_vst3`] loads the `Reverie.vst3` bundle made from the same
//! build as the CLAP tests use (debug, `assert_process_allocs`) the way a
//! Linux host does: `dlopen`, `ModuleEntry`, `GetPluginFactory`, the class
//! found by name. [`Vst3Plugin`] drives one instance as Ardour does: bus
//! arrangements, `setupProcessing`, `setActive`, `setProcessing`, then
//! `process()` calls whose `ProcessData::processMode` the caller chooses
//! per render (Ardour's exports mark each call `kOffline` while the setup
//! said `kRealtime`), with automation through the parameter-change queues,
//! state through `IBStream`, and parameter texts through the edit
//! controller.
//!
//! One file, though long: the COM objects the host implements (parameter
//! queues, the stream, the component handler) and the instance's
//! lifecycle are one FFI surface, each part meaningful only with the others.

use std::cell::{Cell, RefCell};
use std::ffi::{c_void, CStr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, BusDirections_, IAudioProcessor, IAudioProcessorTrait,
    IComponent, IComponentHandler, IComponentHandlerTrait, IComponentTrait, IEditController,
    IEditControllerTrait, IParamValueQueue, IParamValueQueueTrait, IParameterChanges, IParameterChangesTrait,
    MediaTypes_, ParamID, ParamValue, ParameterInfo, ProcessData, ProcessModes_, ProcessSetup, RestartFlags_,
    SpeakerArr, SpeakerArrangement, String128, SymbolicSampleSizes_,
};
use vst3::Steinberg::{
    int32, int64, kInvalidArgument, kResultOk, tresult, IBStream, IBStreamTrait, IBStream_, IPluginBaseTrait,
    IPluginFactory, IPluginFactoryTrait, PClassInfo, TUID,
};
use vst3::{Class, ComPtr, ComWrapper, Interface};

use crate::clap_host::{reverie_bundle, CHANNELS};

/// The plugin's class name in its VST3 factory.
pub const CLASS_NAME: &str = "Reverie";

/// The loaded `Reverie.vst3` module.
pub struct Vst3Module {
    factory: ComPtr<IPluginFactory>,
    class: TUID,
    // Kept loaded for the life of the test process (after the factory,
    // which it owns the code of).
    _library: libloading::Library,
}

/// Loads the bundle built for this test run (once per process).
pub fn reverie_vst3() -> &'static Vst3Module {
    static MODULE: OnceLock<Vst3Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        let binary = reverie_bundle().vst3.join("Contents/x86_64-linux/Reverie.so");
        // SAFETY: loading our own freshly built plugin, as a host would.
        unsafe { Vst3Module::load(&binary) }
    })
}

impl Vst3Module {
    /// Loads a VST3 module binary and finds [`CLASS_NAME`] in its factory.
    ///
    /// # Safety
    /// Runs the library's initialisers and entry points.
    pub unsafe fn load(binary: &Path) -> Self {
        let library = unsafe { libloading::Library::new(binary) }
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", binary.display()));
        unsafe {
            let entry = library
                .get::<unsafe extern "C" fn(*mut c_void) -> bool>(b"ModuleEntry\0")
                .expect("the module exports ModuleEntry");
            assert!(entry(std::ptr::null_mut()), "ModuleEntry fails");
            let get_factory = library
                .get::<unsafe extern "system" fn() -> *mut c_void>(b"GetPluginFactory\0")
                .expect("the module exports GetPluginFactory");
            let factory = ComPtr::<IPluginFactory>::from_raw(get_factory() as *mut IPluginFactory)
                .expect("GetPluginFactory returns a factory");
            let class = (0..factory.countClasses())
                .find_map(|i| {
                    let mut info: PClassInfo = std::mem::zeroed();
                    (factory.getClassInfo(i, &mut info) == kResultOk
                        && CStr::from_ptr(info.name.as_ptr()).to_str() == Ok(CLASS_NAME))
                    .then_some(info.cid)
                })
                .expect("the factory lists Reverie");
            Self {
                factory,
                class,
                _library: library,
            }
        }
    }
}

/// One parameter as the edit controller describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Vst3Param {
    /// The VST3 parameter id (nice-plug: the same hash as the CLAP id).
    pub id: u32,
    /// Display name.
    pub title: String,
    /// Steps (0 for continuous parameters).
    pub step_count: i32,
    /// Default normalised value.
    pub default: f64,
}

/// A parameter change inside a render: the normalised `value` takes effect
/// at sample `sample` of the rendered signal, sent as a point of that
/// parameter's queue at that offset of the block holding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vst3Change {
    /// Index in the rendered signal.
    pub sample: usize,
    /// VST3 parameter id.
    pub id: u32,
    /// New normalised value.
    pub value: f64,
}

/// `processMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `kRealtime`.
    Realtime,
    /// `kOffline`.
    Offline,
}

impl Mode {
    fn raw(self) -> int32 {
        match self {
            Mode::Realtime => ProcessModes_::kRealtime as int32,
            Mode::Offline => ProcessModes_::kOffline as int32,
        }
    }
}

/// Calls the plugin makes to the host's component handler, counted.
#[derive(Default)]
pub struct HandlerLog {
    /// `restartComponent(kLatencyChanged)` calls.
    pub latency_changes: AtomicUsize,
    /// `performEdit` calls.
    pub edits: AtomicUsize,
}

struct ComponentHandler(Arc<HandlerLog>);

impl Class for ComponentHandler {
    type Interfaces = (IComponentHandler,);
}

impl IComponentHandlerTrait for ComponentHandler {
    unsafe fn beginEdit(&self, _id: ParamID) -> tresult {
        kResultOk
    }

    unsafe fn performEdit(&self, _id: ParamID, _value: ParamValue) -> tresult {
        self.0.edits.fetch_add(1, Ordering::SeqCst);
        kResultOk
    }

    unsafe fn endEdit(&self, _id: ParamID) -> tresult {
        kResultOk
    }

    unsafe fn restartComponent(&self, flags: int32) -> tresult {
        if flags & RestartFlags_::kLatencyChanged as int32 != 0 {
            self.0.latency_changes.fetch_add(1, Ordering::SeqCst);
        }
        kResultOk
    }
}

/// One instance with its host.
pub struct Vst3Plugin {
    component: ComPtr<IComponent>,
    processor: ComPtr<IAudioProcessor>,
    controller: ComPtr<IEditController>,
    params: Vec<Vst3Param>,
    handler: Arc<HandlerLog>,
    max_block: usize,
    active: bool,
    processing: bool,
}

impl Default for Vst3Plugin {
    fn default() -> Self {
        Self::new()
    }
}

impl Vst3Plugin {
    /// Instantiates Reverie from the test run's bundle.
    pub fn new() -> Self {
        Self::from_module(reverie_vst3())
    }

    /// Instantiates Reverie from `module`, initialises it and reads its
    /// parameters.
    pub fn from_module(module: &Vst3Module) -> Self {
        unsafe {
            let mut obj: *mut c_void = std::ptr::null_mut();
            let iid = IComponent::IID;
            let result = module.factory.createInstance(
                module.class.as_ptr(),
                iid.as_ptr() as *const std::ffi::c_char,
                &mut obj,
            );
            assert_eq!(result, kResultOk, "createInstance");
            let component = ComPtr::<IComponent>::from_raw(obj as *mut IComponent).expect("a component");
            assert_eq!(
                component.initialize(std::ptr::null_mut()),
                kResultOk,
                "initialize"
            );
            let processor = component.cast::<IAudioProcessor>().expect("IAudioProcessor");
            let controller = component.cast::<IEditController>().expect("IEditController");
            let handler = Arc::new(HandlerLog::default());
            let handler_obj = ComWrapper::new(ComponentHandler(handler.clone()))
                .to_com_ptr::<IComponentHandler>()
                .expect("handler");
            assert_eq!(controller.setComponentHandler(handler_obj.as_ptr()), kResultOk);
            let params = (0..controller.getParameterCount())
                .map(|i| {
                    let mut info: ParameterInfo = std::mem::zeroed();
                    assert_eq!(controller.getParameterInfo(i, &mut info), kResultOk);
                    Vst3Param {
                        id: info.id,
                        title: from_utf16(&info.title),
                        step_count: info.stepCount,
                        default: info.defaultNormalizedValue,
                    }
                })
                .collect();
            Self {
                component,
                processor,
                controller,
                params,
                handler,
                max_block: 0,
                active: false,
                processing: false,
            }
        }
    }

    /// The parameters, in the controller's order.
    pub fn params(&self) -> &[Vst3Param] {
        &self.params
    }

    /// The id of the parameter titled `title`.
    pub fn param(&self, title: &str) -> u32 {
        self.params
            .iter()
            .find(|p| p.title == title)
            .unwrap_or_else(|| panic!("no parameter titled {title:?}"))
            .id
    }

    /// The calls the plugin made to the host.
    pub fn handler(&self) -> &HandlerLog {
        &self.handler
    }

    /// Sets a normalised parameter value through the edit controller
    /// (outside processing, as a host restoring a project does).
    pub fn set_param(&mut self, id: u32, normalized: f64) {
        assert!(
            !self.processing,
            "set parameters while processing through process()"
        );
        assert_eq!(
            unsafe { self.controller.setParamNormalized(id, normalized) },
            kResultOk
        );
    }

    /// The controller's normalised value of `id`.
    pub fn param_value(&self, id: u32) -> f64 {
        unsafe { self.controller.getParamNormalized(id) }
    }

    /// The text the controller shows for a normalised value.
    pub fn value_to_text(&self, id: u32, normalized: f64) -> Option<String> {
        let mut text: String128 = [0; 128];
        let ok = unsafe { self.controller.getParamStringByValue(id, normalized, &mut text) };
        (ok == kResultOk).then(|| from_utf16(&text))
    }

    /// The normalised value the controller reads from a text.
    pub fn text_to_value(&self, id: u32, text: &str) -> Option<f64> {
        let mut wide: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
        let mut value = 0.0;
        let ok = unsafe {
            self.controller
                .getParamValueByString(id, wide.as_mut_ptr(), &mut value)
        };
        (ok == kResultOk).then_some(value)
    }

    /// Stereo in and out, `setupProcessing` with `mode`, `setActive(true)`.
    pub fn activate(&mut self, sample_rate: f64, max_block: usize, mode: Mode) {
        assert!(!self.active, "already active");
        unsafe {
            let mut ins: [SpeakerArrangement; 1] = [SpeakerArr::kStereo];
            let mut outs: [SpeakerArrangement; 1] = [SpeakerArr::kStereo];
            assert_eq!(
                self.processor
                    .setBusArrangements(ins.as_mut_ptr(), 1, outs.as_mut_ptr(), 1),
                kResultOk,
                "stereo bus arrangement"
            );
            for dir in [BusDirections_::kInput, BusDirections_::kOutput] {
                self.component
                    .activateBus(MediaTypes_::kAudio as int32, dir as int32, 0, 1);
            }
            let mut setup = ProcessSetup {
                processMode: mode.raw(),
                symbolicSampleSize: SymbolicSampleSizes_::kSample32 as int32,
                maxSamplesPerBlock: max_block as int32,
                sampleRate: sample_rate,
            };
            assert_eq!(
                self.processor.setupProcessing(&mut setup),
                kResultOk,
                "setupProcessing"
            );
            assert_eq!(self.component.setActive(1), kResultOk, "setActive");
        }
        self.max_block = max_block;
        self.active = true;
    }

    /// The latency the plugin reports, in samples.
    pub fn latency(&self) -> u32 {
        unsafe { self.processor.getLatencySamples() }
    }

    /// Stops processing and deactivates.
    pub fn deactivate(&mut self) {
        unsafe {
            if self.processing {
                self.processor.setProcessing(0);
                self.processing = false;
            }
            if self.active {
                self.component.setActive(0);
                self.active = false;
            }
        }
    }

    /// Renders `input` (two channels of equal length) in blocks of `block`
    /// frames on an audio thread, each `process()` call marked `mode`, with
    /// `changes` as queue points at their sample offsets. Starts processing
    /// first if needed. Returns the output, one vector per channel.
    pub fn process(
        &mut self,
        input: &[&[f32]],
        block: usize,
        changes: &[Vst3Change],
        mode: Mode,
    ) -> Vec<Vec<f32>> {
        assert!(self.active, "activate before processing");
        assert!(
            block >= 1 && block <= self.max_block,
            "block size {block} out of range"
        );
        assert_eq!(input.len(), CHANNELS);
        assert!(
            changes.windows(2).all(|w| w[0].sample <= w[1].sample),
            "changes in time order"
        );
        if !self.processing {
            assert_eq!(
                unsafe { self.processor.setProcessing(1) },
                kResultOk,
                "setProcessing"
            );
            self.processing = true;
        }
        let processor = SendPtr(&self.processor);
        std::thread::scope(|s| {
            s.spawn(move || {
                let processor = processor;
                render(processor.0, input, block, changes, mode)
            })
            .join()
            .expect("the audio thread panicked")
        })
    }

    /// Saves the component state (`IComponent::getState`).
    pub fn save_state(&self) -> Vec<u8> {
        let stream = ComWrapper::new(MemoryStream::default());
        let ptr = stream.to_com_ptr::<IBStream>().expect("stream");
        assert_eq!(
            unsafe { self.component.getState(ptr.as_ptr()) },
            kResultOk,
            "getState"
        );
        let bytes = stream.bytes.borrow().clone();
        bytes
    }

    /// Loads a saved state (`IComponent::setState`, then the controller's
    /// `setComponentState`, as hosts do).
    pub fn load_state(&mut self, bytes: &[u8]) {
        for target in 0..2 {
            let stream = ComWrapper::new(MemoryStream {
                bytes: RefCell::new(bytes.to_vec()),
                pos: Cell::new(0),
            });
            let ptr = stream.to_com_ptr::<IBStream>().expect("stream");
            let result = unsafe {
                if target == 0 {
                    self.component.setState(ptr.as_ptr())
                } else {
                    self.controller.setComponentState(ptr.as_ptr())
                }
            };
            assert_eq!(result, kResultOk, "setState");
        }
    }
}

impl Drop for Vst3Plugin {
    fn drop(&mut self) {
        self.deactivate();
        unsafe {
            self.component.terminate();
        }
    }
}

/// The processor, lent to the test's audio thread.
struct SendPtr<'a>(&'a ComPtr<IAudioProcessor>);
// SAFETY: VST3 requires a processor to accept process() on the host's audio
// thread; the host thread waits for it.
unsafe impl Send for SendPtr<'_> {}

fn from_utf16(text: &[u16]) -> String {
    let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
    String::from_utf16_lossy(&text[..end])
}

/// One parameter's points within one block.
struct ParamQueue {
    id: u32,
    points: RefCell<Vec<(int32, f64)>>,
}

impl Class for ParamQueue {
    type Interfaces = (IParamValueQueue,);
}

impl IParamValueQueueTrait for ParamQueue {
    unsafe fn getParameterId(&self) -> ParamID {
        self.id
    }

    unsafe fn getPointCount(&self) -> int32 {
        self.points.borrow().len() as int32
    }

    unsafe fn getPoint(&self, index: int32, offset: *mut int32, value: *mut ParamValue) -> tresult {
        match self.points.borrow().get(index as usize) {
            Some(&(o, v)) if !offset.is_null() && !value.is_null() => {
                unsafe {
                    *offset = o;
                    *value = v;
                }
                kResultOk
            }
            _ => kInvalidArgument,
        }
    }

    unsafe fn addPoint(&self, _offset: int32, _value: ParamValue, _index: *mut int32) -> tresult {
        kInvalidArgument
    }
}

/// The block's parameter changes: one queue per automated parameter.
struct ParamChanges {
    queues: Vec<(ComWrapper<ParamQueue>, ComPtr<IParamValueQueue>)>,
}

impl Class for ParamChanges {
    type Interfaces = (IParameterChanges,);
}

impl IParameterChangesTrait for ParamChanges {
    unsafe fn getParameterCount(&self) -> int32 {
        self.queues.len() as int32
    }

    unsafe fn getParameterData(&self, index: int32) -> *mut IParamValueQueue {
        self.queues
            .get(index as usize)
            .map_or(std::ptr::null_mut(), |(_, p)| p.as_ptr())
    }

    unsafe fn addParameterData(&self, _id: *const ParamID, _index: *mut int32) -> *mut IParamValueQueue {
        std::ptr::null_mut()
    }
}

/// The audio thread's loop: everything allocated first, then one
/// `process()` per block.
fn render(
    processor: &ComPtr<IAudioProcessor>,
    input: &[&[f32]],
    block: usize,
    changes: &[Vst3Change],
    mode: Mode,
) -> Vec<Vec<f32>> {
    let len = input[0].len();
    let mut output: Vec<Vec<f32>> = (0..CHANNELS).map(|_| Vec::with_capacity(len)).collect();
    let mut ins = vec![vec![0.0f32; block]; CHANNELS];
    let mut outs = vec![vec![0.0f32; block]; CHANNELS];
    let mut ids: Vec<u32> = changes.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let queues: Vec<_> = ids
        .iter()
        .map(|&id| {
            let q = ComWrapper::new(ParamQueue {
                id,
                points: RefCell::new(Vec::with_capacity(changes.len())),
            });
            let p = q.to_com_ptr::<IParamValueQueue>().expect("queue");
            (q, p)
        })
        .collect();
    let param_changes = ComWrapper::new(ParamChanges { queues });
    let param_changes_ptr = param_changes.to_com_ptr::<IParameterChanges>().expect("changes");
    let mut in_ptrs = [std::ptr::null_mut::<f32>(); CHANNELS];
    let mut out_ptrs = [std::ptr::null_mut::<f32>(); CHANNELS];
    let mut next_change = 0;
    let mut start = 0;
    while start < len {
        let n = block.min(len - start);
        for (buf, src) in ins.iter_mut().zip(input) {
            buf[..n].copy_from_slice(&src[start..start + n]);
        }
        for buf in &mut outs {
            buf[..n].fill(0.0);
        }
        for (q, _) in &param_changes.queues {
            q.points.borrow_mut().clear();
        }
        while next_change < changes.len() && changes[next_change].sample < start + n {
            let c = changes[next_change];
            let (q, _) = param_changes
                .queues
                .iter()
                .find(|(q, _)| q.id == c.id)
                .expect("a queue per id");
            q.points.borrow_mut().push(((c.sample - start) as int32, c.value));
            next_change += 1;
        }
        for (p, b) in in_ptrs.iter_mut().zip(&mut ins) {
            *p = b.as_mut_ptr();
        }
        for (p, b) in out_ptrs.iter_mut().zip(&mut outs) {
            *p = b.as_mut_ptr();
        }
        let mut in_bus = AudioBusBuffers {
            numChannels: CHANNELS as int32,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: in_ptrs.as_mut_ptr(),
            },
        };
        let mut out_bus = AudioBusBuffers {
            numChannels: CHANNELS as int32,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: out_ptrs.as_mut_ptr(),
            },
        };
        let mut data = ProcessData {
            processMode: mode.raw(),
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as int32,
            numSamples: n as int32,
            numInputs: 1,
            numOutputs: 1,
            inputs: &mut in_bus,
            outputs: &mut out_bus,
            inputParameterChanges: param_changes_ptr.as_ptr(),
            outputParameterChanges: std::ptr::null_mut(),
            inputEvents: std::ptr::null_mut(),
            outputEvents: std::ptr::null_mut(),
            processContext: std::ptr::null_mut(),
        };
        assert_eq!(unsafe { processor.process(&mut data) }, kResultOk, "process()");
        for (dst, buf) in output.iter_mut().zip(&outs) {
            dst.extend_from_slice(&buf[..n]);
        }
        start += n;
    }
    output
}

/// An in-memory `IBStream`.
#[derive(Default)]
struct MemoryStream {
    bytes: RefCell<Vec<u8>>,
    pos: Cell<usize>,
}

impl Class for MemoryStream {
    type Interfaces = (IBStream,);
}

impl IBStreamTrait for MemoryStream {
    unsafe fn read(&self, buffer: *mut c_void, count: int32, read: *mut int32) -> tresult {
        let bytes = self.bytes.borrow();
        let pos = self.pos.get().min(bytes.len());
        let n = (count.max(0) as usize).min(bytes.len() - pos);
        unsafe {
            std::ptr::copy_nonoverlapping(bytes[pos..].as_ptr(), buffer as *mut u8, n);
            if !read.is_null() {
                *read = n as int32;
            }
        }
        self.pos.set(pos + n);
        kResultOk
    }

    unsafe fn write(&self, buffer: *mut c_void, count: int32, written: *mut int32) -> tresult {
        let n = count.max(0) as usize;
        let mut bytes = self.bytes.borrow_mut();
        let pos = self.pos.get();
        if bytes.len() < pos + n {
            bytes.resize(pos + n, 0);
        }
        unsafe {
            std::ptr::copy_nonoverlapping(buffer as *const u8, bytes[pos..].as_mut_ptr(), n);
            if !written.is_null() {
                *written = n as int32;
            }
        }
        self.pos.set(pos + n);
        kResultOk
    }

    unsafe fn seek(&self, pos: int64, mode: int32, result: *mut int64) -> tresult {
        let len = self.bytes.borrow().len() as int64;
        let base = match mode {
            m if m == IBStream_::IStreamSeekMode_::kIBSeekSet as int32 => 0,
            m if m == IBStream_::IStreamSeekMode_::kIBSeekCur as int32 => self.pos.get() as int64,
            m if m == IBStream_::IStreamSeekMode_::kIBSeekEnd as int32 => len,
            _ => return kInvalidArgument,
        };
        let to = (base + pos).max(0);
        self.pos.set(to as usize);
        if !result.is_null() {
            unsafe { *result = to };
        }
        kResultOk
    }

    unsafe fn tell(&self, pos: *mut int64) -> tresult {
        if pos.is_null() {
            return kInvalidArgument;
        }
        unsafe { *pos = self.pos.get() as int64 };
        kResultOk
    }
}
