"""Env options bound into a family: the MuJoCo clock, the oracle, pickling, plug-ins, errors."""

import pickle

import numpy as np
import pytest

from metarl import envs
from metarl.envs.ant import ant_model
from metarl.envs.half_cheetah import half_cheetah_model

# family, options -> seconds per action (frame_skip x timestep)
CLOCKS = [("cheetah_vel", {}, 0.05), ("cheetah_dir", {"clock": "v5"}, 0.05),
          ("cheetah_vel", {"clock": "paper"}, 0.01), ("ant_dir", {"clock": "paper"}, 0.02),
          ("ant_goal", {"frame_skip": 2, "timestep": 0.005}, 0.01),
          ("ant_vel", {"frame_skip": 1}, 0.01), ("cheetah_dir", {"timestep": 0.002}, 0.01)]


@pytest.mark.parametrize(("name", "options", "dt"), CLOCKS)
def test_the_control_step_is_frame_skip_times_timestep_in_both_forms(name, options, dt):
    family = envs.resolve(name).with_options(**options)
    single = family.make()
    batch = family.make_batched(2, num_threads=1)
    assert single.unwrapped.dt == pytest.approx(dt) and batch.dt == pytest.approx(dt)
    assert batch.physics.frame_skip * batch.physics.model.opt.timestep == pytest.approx(dt)
    single.close()
    batch.close()


@pytest.mark.parametrize("name", ["cheetah_dir", "ant_dir"])
def test_the_velocity_reward_divides_by_the_new_control_step(name):
    batch = envs.resolve(name).with_options(clock="paper").make_batched(1, num_threads=1)
    batch.set_tasks([{"direction": 1.0}])
    batch.reset([3])
    x_before = batch.qpos[0, 0] if name.startswith("cheetah") else batch._com[0, 0]
    _, reward, _, _, info = batch.step(np.full((1, batch.action_size), 0.3))
    x_after = batch.qpos[0, 0] if name.startswith("cheetah") else batch._com[0, 0]
    assert info["x_velocity"][0] == pytest.approx((x_after - x_before) / batch.dt, rel=1e-12)
    batch.close()


def test_no_options_and_the_v5_clock_leave_the_default_bitwise_unchanged():
    plain = envs.resolve("ant_dir")
    assert plain.with_options() == plain and plain.env_options == {}
    batches = [plain.make_batched(2, num_threads=1),
               plain.with_options(clock="v5").make_batched(2, num_threads=1),
               plain.with_options(frame_skip=5, timestep=0.01).make_batched(2, num_threads=1)]
    assert batches[0].physics.model is ant_model()  # the cached model itself, not a copy
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 2, 8))
    rows = []
    for batch in batches:
        batch.set_tasks([{"direction": 1.0}, {"direction": -1.0}])
        obs = [batch.reset([5, 6])]
        obs += [batch.step(a)[0] for a in actions]
        rows.append(np.stack(obs))
        batch.close()
    assert np.array_equal(rows[0], rows[1]) and np.array_equal(rows[0], rows[2])


def test_a_changed_timestep_steps_a_copy_and_leaves_the_shared_model_alone():
    batch = envs.resolve("cheetah_vel").with_options(timestep=0.02).make_batched(1)
    assert batch.physics.model is not half_cheetah_model()
    assert half_cheetah_model().opt.timestep == 0.01 and batch.physics.model.opt.timestep == 0.02
    batch.close()


def test_rllab_contacts_soften_every_ant_geom_in_a_copy():
    family = envs.resolve("ant_dir").with_options(clock="paper", contacts="rllab")
    batch = family.make_batched(2, num_threads=1)
    model = batch.physics.model
    assert np.array_equal(model.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (model.ngeom, 1)))
    assert model.opt.timestep == 0.02 and model is not ant_model()
    assert np.array_equal(ant_model().geom_solimp[:, :3],
                          np.tile([0.9, 0.95, 0.001], (model.ngeom, 1)))
    hard = envs.resolve("ant_dir").with_options(clock="paper").make_batched(2, num_threads=1)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2, 8))
    rows = []
    for env in (batch, hard):
        env.set_tasks([{"direction": 1.0}, {"direction": -1.0}])
        env.reset([5, 6])
        rows.append(np.stack([env.step(a)[0] for a in actions]))
        env.close()
    assert not np.allclose(rows[0], rows[1])  # the feet meet a softer floor


def test_rllab_contacts_leave_the_half_cheetah_as_it_is():
    """rllab's half_cheetah.xml has v5's contacts: the option steps the shared model itself."""
    batch = envs.resolve("cheetah_dir").with_options(contacts="rllab").make_batched(1)
    assert batch.physics.model is half_cheetah_model()
    batch.close()


def test_the_oracle_honours_the_options_of_its_family():
    family = envs.resolve("ant_dir+oracle").with_options(clock="paper")
    assert family.env_options == {"clock": "paper"} and family.name == "ant_dir+oracle"
    batch = family.make_batched(2, num_threads=1)
    assert batch.inner.dt == pytest.approx(0.02)
    batch.close()
    single = family.make()
    assert single.env.unwrapped.dt == pytest.approx(0.02)
    single.close()
    assert (envs.resolve("ant_dir").with_options(clock="paper")
            .sample_tasks(4, seed=1) == family.sample_tasks(4, seed=1))


def test_a_family_pickles_with_its_options():
    for name in ("cheetah_dir", "ant_goal+oracle"):
        family = envs.resolve(name).with_options(frame_skip=1, timestep=0.02)
        copy = pickle.loads(pickle.dumps(family))
        assert copy == family and copy.env_options == {"frame_skip": 1, "timestep": 0.02}
        batch = copy.make_batched(1, num_threads=1)
        assert (batch.inner if name.endswith("+oracle") else batch).dt == pytest.approx(0.02)
        batch.close()


def test_options_overlay_those_already_bound():
    family = envs.resolve("ant_vel").with_options(frame_skip=2).with_options(timestep=0.005)
    assert family.env_options == {"frame_skip": 2, "timestep": 0.005}


@pytest.mark.parametrize(("name", "options", "words"), [
    ("cheetah_vel", {"fram_skip": 1}, ["unknown env option 'fram_skip'", "cheetah_vel",
                                       "frame_skip", "timestep", "clock"]),
    ("navigation_2d", {"clock": "paper"}, ["unknown env option 'clock'", "no env options"]),
])
def test_an_unknown_option_is_one_line_naming_it_the_family_and_the_valid_ones(name, options,
                                                                               words):
    with pytest.raises(envs.EnvOptionError) as caught:
        envs.resolve(name).with_options(**options)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words)


@pytest.mark.parametrize("options", [{"frame_skip": 0}, {"frame_skip": 2.5},
                                     {"frame_skip": True}, {"timestep": -0.01},
                                     {"timestep": float("nan")}, {"timestep": "fast"},
                                     {"clock": "rllab"}, {"clock": "paper", "frame_skip": 1},
                                     {"contacts": "soft"}, {"contacts": 1}])
def test_a_bad_value_is_refused_in_one_line_by_both_forms(options):
    family = envs.resolve("ant_dir").with_options(**options)
    for build in (family.make, lambda: family.make_batched(1)):
        with pytest.raises(envs.EnvOptionError) as caught:
            build()
        message = str(caught.value)
        assert "\n" not in message and message.startswith("ant_dir: env option ")
        assert "valid env options: frame_skip" in message


def test_a_plugin_family_gets_the_options_its_constructor_takes(plugin_envs):
    assert envs.resolve("plugin_family:LineTargetEnv").option_rules() == {}
    with pytest.raises(envs.EnvOptionError, match="unknown env option 'gravity'.*takes no env"):
        envs.resolve("plugin_family:LineTargetEnv").with_options(gravity=1.0)
    # a constructor that takes **kwargs declares nothing: what it refuses is one line
    family = envs.resolve("plugin_family:LineTargetFromBatch").with_options(gravity=1.0)
    with pytest.raises(envs.NotATaskFamilyError, match="__init__ raised TypeError.*gravity"):
        family.make()
    with pytest.raises(envs.NotATaskFamilyError, match="__init__ raised TypeError.*gravity"):
        family.make_batched(2)
