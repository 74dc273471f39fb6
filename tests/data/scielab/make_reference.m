% Computes reference.json with X. Zhang's S-CIELAB code (see SOURCE.md) in GNU Octave.
%
%   octave --no-gui --eval "addpath('DIR_WITH_THE_REFERENCE_CODE'); make_reference"
%
% run in tests/data/scielab. Only the conversion of 8-bit sRGB to XYZ (Y of white 100),
% which the reference leaves to its caller, is written here: IEC 61966-2-1 decoding and
% matrix, the D65 white.

rgb2xyz = [0.4124564 0.3575761 0.1804375; 0.2126729 0.7151522 0.0721750; 0.0193339 0.1191920 0.9503041];
white = [95.047 100 108.883];
cases = {'grain', 50; 'saturation', 50; 'shifted_text', 224; 'grain', 23};
q = 0.95;

function xyz = srgb_to_xyz(path, m)
  c = double(imread(path)) / 255;
  lin = c / 12.92;
  high = c > 0.04045;
  lin(high) = ((c(high) + 0.055) / 1.055) .^ 2.4;
  xyz = reshape(reshape(lin, [], 3) * m' * 100, size(lin));
end

out = struct();
out.cases = {};
for i = 1:rows(cases)
  name = cases{i, 1};
  spd = cases{i, 2};
  xyz1 = srgb_to_xyz([name '_base.png'], rgb2xyz);
  xyz2 = srgb_to_xyz([name '_cand.png'], rgb2xyz);
  de = scielab(spd, xyz1, xyz2, white, 'xyz');
  [h, w] = size(de);
  v = sort(de(:));
  % Pixels (row, column; 0-based) at which the map is recorded: corners, edges, inside.
  at = [0 0; 0 w-1; h-1 0; h-1 w-1; 0 floor(w/2); floor(h/2) 0; floor(h/2) floor(w/2); 7 11; h-9 w-13; 20 40];
  values = de(sub2ind([h w], at(:, 1) + 1, at(:, 2) + 1));
  c = struct('name', name, 'samples_per_degree', spd, 'height', h, 'width', w, ...
             'mean', mean(de(:)), 'p95', v(ceil(q * numel(v))), 'max', v(end), ...
             'pixels', at, 'delta_e', values);
  out.cases{end + 1} = c;
end
% The reference's separable kernels (rows: Gaussians x weight term) at 50 and 23 samples per degree.
for spd = [50 23]
  [k1, k2, k3] = separableFilters(spd, 3);
  out.(sprintf('kernels_%d', spd)) = {k1, k2, k3};
end
fid = fopen('reference.json', 'w');
fputs(fid, jsonencode(out));
fclose(fid);
