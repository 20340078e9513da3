# frozen_string_literal: true

require 'etc'
require 'open3'

RSpec.describe Walden::Check do
  around do |ex|
    Dir.mktmpdir do |d|
      @root = d
      ex.run
    end
  end

  let(:me) { Etc.getpwuid(Process.uid).name }
  let(:my_group) { Etc.getgrgid(Process.gid).name }
  let(:envdir) { "#{@root}/wal-e.d/env" }
  let(:seen) { "#{@root}/seen" }
  # Stands in for `walden --envdir DIR check`: records the envdir it was
  # given and fails like walden does, one line per problem.
  let(:fake_walden) do
    path = "#{@root}/walden"
    File.write(path, <<~SH)
      #!/bin/sh
      [ "$1" = --envdir ] && [ "$3" = check ] || { echo "usage: $*"; exit 2; }
      for f in "$2"/*; do printf '%s=%s\\n' "$(basename "$f")" "$(cat "$f")"; done > #{seen}
      echo "store: reachable"
      [ -f "$2/WALE_S3_PREFIX" ] && exit 0
      echo "walden check: WALE_S3_PREFIX: no storage prefix defined" >&2
      echo "walden check: archive_mode: is off" >&2
      exit 1
    SH
    File.chmod(0o755, path)
    path
  end

  def args(env)
    cfg = config_for('walden' => { 'envdir' => envdir, 'user' => me, 'group' => my_group, 'env' => env })
    { config: cfg, removals: %w[DROPPED], walden_bin: fake_walden, timeout: 30, extra_args: [] }
  end

  # Runs the command for real, minus runuser when the specs run as root.
  let(:runner) do
    lambda do |*argv|
      i = argv.index('runuser')
      argv = argv[0, i] + argv[(i + 4)..] if i
      Open3.capture3(*argv)
    end
  end

  before do
    FileUtils.mkdir_p(envdir)
    File.write("#{envdir}/DROPPED", "old\n")
    File.write("#{envdir}/AWS_REGION", "eu-west-1\n")
  end

  it 'checks the envdir as the converge will leave it, and cleans up' do
    result = described_class.run!(args('WALE_S3_PREFIX' => 's3://b/p'), runner: runner)
    expect(result.ok).to be(true)
    expect(File.read(seen).lines.map(&:chomp)).to eq(%w[AWS_REGION=eu-west-1 WALE_S3_PREFIX=s3://b/p])
    expect(Dir.children(File.dirname(envdir))).to eq(['env'])
  end

  it 'stops with walden check\'s problems, one per line' do
    message = "stopped before touching WAL-E:\n  walden check: WALE_S3_PREFIX: no storage prefix defined\n  " \
              'walden check: archive_mode: is off'
    expect { described_class.run!(args({}), runner: runner) }.to raise_error(Walden::CheckFailed, /#{message}\z/)
    expect(Dir.children(File.dirname(envdir))).to eq(['env'])
  end

  it 'falls back to the report when nothing came on stderr' do
    result = Walden::Check::Result.new(ok: false, output: "a\n\nb\n", errors: '')
    expect(result.problems).to eq(%w[a b])
  end

  it 'runs as the service user with a timeout, --envdir before the subcommand' do
    cmd = described_class.command('/usr/bin/walden', '/etc/wal-e.d/.walden-check-x', user: 'postgres', timeout: 300,
                                                                                     extra_args: ['--json'])
    tail = ['/usr/bin/walden', '--envdir', '/etc/wal-e.d/.walden-check-x', 'check', '--json']
    as_user = Process.uid.zero? ? %w[runuser -u postgres --] : []
    expect(cmd).to eq(['timeout', '300', *as_user, *tail])
  end
end
