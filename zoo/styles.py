"""Training-side conv fields (fillers, lr/decay multipliers) of each OpenPose net, as released.

They never change inference; they are kept so an exported prototxt can be fine-tuned as
CMU's could: Gaussian std 0.01 weights and zero biases, lr x1 in the trunk and x4 in the
refinement stages. BODY_25's deploy file carries none of these fields, so neither does ours.
"""

from __future__ import annotations

from dataclasses import replace

from posebridge.zoo.builder import ConvStyle, Filler

GAUSSIAN = Filler("gaussian", std=0.01)
XAVIER = Filler("xavier")
ZERO = Filler("constant")

#: Learning-rate multipliers: the trunk and first stage learn at x1, refinement stages at x4.
TRUNK_LR = 1.0
STAGE_LR = 4.0

POSE_TRUNK = ConvStyle(weight_filler=GAUSSIAN, bias_filler=ZERO, lr_mult=TRUNK_LR)
POSE_STAGE = replace(POSE_TRUNK, lr_mult=STAGE_LR)

#: The hand net's VGG part was initialised with Xavier; every conv spells out ``dilation: 1``.
HAND_VGG = ConvStyle(weight_filler=XAVIER, bias_filler=ZERO, lr_mult=TRUNK_LR, explicit_dilation=True)
HAND_CPM = replace(HAND_VGG, weight_filler=GAUSSIAN)
HAND_STAGE = replace(HAND_CPM, lr_mult=STAGE_LR)

FACE_VGG = POSE_TRUNK
FACE_CPM = POSE_TRUNK
FACE_STAGE = POSE_STAGE

BODY_25 = ConvStyle()
