"""Our own implementation of the SadTalker networks (same checkpoint keys, our code).

Sub-networks and the checkpoint prefix each loads from:
``kp_extractor`` (canonical 3D keypoints), ``generator`` (warping + SPADE renderer),
``audio2exp`` (expression from audio), ``audio2pose`` (head motion from audio; CVAE decoder),
``face_3drecon`` (ResNet-50 giving 257 3DMM coefficients), and the separate mapping network.
"""
