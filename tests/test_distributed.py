"""pl.distribute.auto picks the strategy. (Every objective, policy, transform, backbone
and head under MirroredStrategy: tests/test_protocol.py.)"""

import pretrainlib as pl


def test_auto_picks_tpu_then_several_gpus_then_one_gpu_then_the_default(capsys):
    assert pl.distribute.choice(tpu=True, gpus=8) == "tpu"
    assert pl.distribute.choice(tpu=False, gpus=2) == "mirrored"
    assert pl.distribute.choice(tpu=False, gpus=1) == "one_gpu"
    assert pl.distribute.choice(tpu=False, gpus=0) == "default"
    strategy = pl.distribute.auto()  # this machine: CPU only
    assert strategy.num_replicas_in_sync == 1
    assert "pl.distribute.auto:" in capsys.readouterr().out
