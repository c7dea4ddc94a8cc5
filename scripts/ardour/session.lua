-- Builds an Ardour session for checking Reverie's bounces (run by
-- export-check.sh through ardour7-lua): one track whose SinGen plays a
-- 440 Hz tone at -12 dBFS into Reverie (VST3, built-in model), with the
-- dream strength automated from 0 at the start to 1 at 4 s and held there.
local dir = os.getenv('SESSION')
assert(dir, "set SESSION to the session folder")
assert(create_session(dir, "check", 48000), "cannot create the session")
local route = Session:new_audio_track(1, 2, nil, 1, "Tone", -1, ARDOUR.TrackMode.Normal, true):front()
local tone = ARDOUR.LuaAPI.new_luaproc(Session, "SinGen")
assert(not tone:isnil(), "no SinGen")
route:add_processor_by_index(tone, 0, nil, true)
ARDOUR.LuaAPI.set_processor_param(tone, 0, 440)
ARDOUR.LuaAPI.set_processor_param(tone, 1, -12)
local reverie = ARDOUR.LuaAPI.new_plugin(Session, "Reverie", ARDOUR.PluginType.VST3, "")
assert(not reverie:isnil(), "Ardour does not know Reverie: run its VST3 scanner (export-check.sh does)")
route:add_processor_by_index(reverie, 1, nil, true)
local _, curve = ARDOUR.LuaAPI.plugin_automation(reverie, 0)
curve:add(Temporal.timepos_t(0), 0, false, false)
curve:add(Temporal.timepos_t(48000 * 4), 1, false, false)
curve:add(Temporal.timepos_t(48000 * 15), 1, false, false)
local strength = reverie:to_automatable():automation_control(
  Evoral.Parameter(ARDOUR.AutomationType.PluginAutomation, 0, 0), false)
strength:set_automation_state(ARDOUR.AutoState.Play)
Session:save_state("", false, false, false, false, false)
close_session()
